"""Helpers to run real service processes in tests and find the ports they bound."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each project's import root (its package folder holds the `ferlite` namespace): PYTHONPATH for a
# process that must import this checkout's code without an install.
PROJECT_ROOTS = [ROOT / "services" / name for name in ("common", "facedetect", "classifier", "aggregator",
                                                              "dashboard", "app")] + [
    ROOT / "training"]


def require_tool(name: str) -> str:
    """Path of an external tool. Missing: fail under CI (it must be installed), else skip."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    message = f"{name} is not installed; scripts/setup.sh installs it"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class ServiceProcess:
    """A service started as a subprocess; reads its JSON log until the `serving` line."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.lines: list[str] = []
        self.port = 0
        self.metrics_port = -1
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                record = _json(line)
                if record.get("msg") == "serving":
                    self.port = int(record["port"])
                    self.metrics_port = int(record["metrics_port"])
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("service did not start:\n" + "\n".join(self.lines))
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def _json(line: str) -> dict:
    try:
        value = json.loads(line)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def port_free(port: int) -> bool:
    """True when nobody listens on the port (TIME_WAIT leftovers of closed connections are fine)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            s.listen()
        except OSError:
            return False
        return True
