"""`ferlite up` as a child process, for the system tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from tests.support.procs import ROOT


class RunningUp:
    """`ferlite up` as a child process, its output collected line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd=ROOT) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "ferlite", "up", *args], cwd=cwd, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("ferlite is up"):
                self.ready.set()

    def tail(self, n: int = 30) -> str:
        return "".join(self.lines[-n:])

    def wait_up(self, timeout: float = 240) -> None:
        assert self.ready.wait(timeout), "stack did not come up:\n" + self.tail(40)

    def line_starting(self, prefix: str, timeout: float = 30) -> str:
        """The first output line starting with `prefix`, waiting for it (`up` prints its hints after
        the "ferlite is up" line that wait_up waits for)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in list(self.lines) if line.startswith(prefix)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no line starting {prefix!r}:\n" + self.tail(40))

    def stop(self, timeout: float = 90) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
