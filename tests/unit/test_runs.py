"""Issue 30: a local stack owns its run folder (a lock taken before anything is written there) and
is listed while it runs, so clients find it by port offset; a listed stack that died is dropped."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ferlite.app import runs


def entry(tmp_path, offset: int, pid: int | None = None) -> runs.RunningStack:
    return runs.RunningStack(offset, str((tmp_path / f"var-{offset}").resolve()), pid or os.getpid(), 0.0,
                             "127.0.0.1", {"facedetect": 50051 + offset}, True)


def test_a_second_owner_of_a_run_folder_is_refused_and_the_listing_finds_the_first(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    data = tmp_path / "var-7"
    with runs.owned(data):
        stack = entry(tmp_path, 7)
        runs.register(stack)
        # Another process tries the same folder: refused, naming the stack that holds it.
        other = subprocess.run([sys.executable, "-c", "from ferlite.app import runs; from pathlib import Path\n"
                                f"with runs.owned(Path({str(data)!r})): pass"],
                               capture_output=True, text=True, env={**os.environ})
        assert other.returncode != 0 and "belongs to a running stack" in other.stderr
        assert "port offset 7" in other.stderr
        assert runs.locate(7) == stack and runs.locate(8) is None
        assert (runs.registry_dir().stat().st_mode & 0o077) == 0
        assert (runs.registry_dir() / "7.json").stat().st_mode & 0o077 == 0
    # The lock is gone with its holder: the entry is a dead stack's, dropped when listed.
    assert runs.running() == [] and not (runs.registry_dir() / "7.json").exists()


def test_unregister_never_removes_another_stacks_entry(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    runs.register(entry(tmp_path, 3, pid=os.getpid()))
    runs.unregister(entry(tmp_path, 3, pid=os.getpid() + 1))  # a stack that started later on the same offset
    assert (runs.registry_dir() / "3.json").exists()


@pytest.mark.parametrize(("offset", "folder"), [(0, "var"), (100, "var-100")])
def test_each_offset_has_its_own_default_folder(offset, folder) -> None:
    assert str(runs.default_data_dir(offset)) == folder
