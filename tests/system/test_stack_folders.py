"""Issue 30: a newcomer cannot break a running stack by following the hints. A second `ferlite up`
on busy ports prints a command; run exactly as printed, from the same folder, it starts a stack of
its own beside the first (its own run folder: tokens, sockets, Redis, Triton, logs) and changes
nothing of the first. From another folder, `status`, `summary` and `stop` find each stack by its
port offset. Before: the same `up` overwrote the running stack's tokens, started a second Redis on
its files and removed its socket on exit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from ferlite.app.stack import free_port_offset
from tests.support.stack import RunningUp


def ferlite(*args: str, cwd, env, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferlite", *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def test_the_busy_ports_hint_works_as_printed_and_clients_find_stacks_by_offset(tmp_path) -> None:
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    offset = free_port_offset()
    first = RunningUp("--port-offset", str(offset), env=env, cwd=work)
    second = None
    try:
        first.wait_up()
        folder = work / f"var-{offset}"  # its own run folder, named by its offset
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "stack.lock"}
        assert {"auth-token", "camera-token", "service-token"} <= set(files)

        busy = ferlite("up", "--port-offset", str(offset), cwd=work, env=env)  # the same stack again: refused
        assert busy.returncode == 1 and "belongs to a running stack" in busy.stderr, busy.stderr
        hint = re.search(r"ferlite up --port-offset (\d+)", busy.stderr)
        assert hint, busy.stderr
        ports_taken = ferlite("up", "--port-offset", str(offset), "--data-dir", str(tmp_path / "fresh"), cwd=work,
                              env=env)  # its own folder, but the ports are the first stack's
        assert ports_taken.returncode == 2 and "ports in use" in ports_taken.stderr
        assert re.search(r"ferlite up --port-offset (\d+)", ports_taken.stderr).group(0) == hint.group(0)
        assert not (tmp_path / "fresh" / "auth-token").exists()
        taken = ferlite("up", "--port-offset", hint.group(1), "--data-dir", str(folder), cwd=work, env=env)
        assert taken.returncode == 1 and "belongs to a running stack" in taken.stderr  # the lock, before any write

        second = RunningUp(*hint.group(0).split()[2:], env=env, cwd=work)  # exactly as printed, same folder
        second.wait_up()
        other = int(hint.group(1))
        assert (work / f"var-{other}" / "auth-token").is_file()
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "stack.lock"} == files

        status = ferlite("status", "--json", cwd=elsewhere, env=env)
        assert status.returncode == 0, status.stderr
        stacks = {s["port_offset"]: s for s in json.loads(status.stdout)}
        assert set(stacks) == {offset, other}
        for s in stacks.values():
            assert {name: h["state"] for name, h in s["services"].items()} == {
                "facedetect": "serving", "classifier": "serving", "aggregator": "serving", "dashboard": "ready"}
        assert stacks[offset]["run_folder"] == str(folder.resolve())
        for n in (offset, other):  # each stack's aggregator and admin token, found from another folder
            summary = ferlite("summary", "--classroom", "room-1", "--port-offset", str(n), "--json", cwd=elsewhere,
                              env=env)
            assert summary.returncode == 0, summary.stderr
        missing = ferlite("summary", "--classroom", "room-1", "--port-offset", "1", cwd=elsewhere, env=env)
        assert missing.returncode == 1 and "no ferlite stack is running with --port-offset 1" in missing.stderr

        stop = ferlite("stop", "--port-offset", str(other), cwd=elsewhere, env=env)
        assert stop.returncode == 0 and f"port offset {other}" in stop.stdout, stop.stderr
        assert second.proc.wait(30) == 0
        assert ferlite("status", "--port-offset", str(offset), cwd=elsewhere, env=env).returncode == 0
        assert (folder / "run" / "aggregator.sock").exists()  # the first stack's socket survived the second's exit
        assert ferlite("stop", "--port-offset", str(offset), cwd=elsewhere, env=env).returncode == 0
        assert first.proc.wait(30) == 0
        gone = ferlite("status", cwd=elsewhere, env=env)
        assert gone.returncode == 1 and "no ferlite stack is running" in gone.stdout
    finally:
        for up in (second, first):
            if up is not None and up.proc.poll() is None:
                up.stop()
