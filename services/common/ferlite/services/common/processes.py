"""Child processes that must not outlive the service that started them."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("ferlite.processes")

PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGTERM the child when its parent dies, even by kill -9.

    Without it, an embedded Redis or Triton started by a service that crashes keeps running,
    holding its socket and ports, and the restarted service cannot start its own.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL("libc.so.6", use_errno=True)

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


class Restarter:
    """Restarts an embedded child process (Redis, Triton) whenever it dies, with exponential backoff.

    One mechanism for every child: a daemon thread polls `is_dead`; on a death it logs, runs
    `cleanup` (what the dead process left behind), waits the backoff, calls `restart` and then
    `on_restart` (a metric). A failed restart doubles the backoff up to `max_backoff` and tries
    again; `stop()` ends the loop and may be called from any thread, the loop's own included.
    """

    def __init__(self, name: str, is_dead: Callable[[], bool], restart: Callable[[], object], *,
                 cleanup: Callable[[], object] = lambda: None, on_restart: Callable[[], None] = lambda: None,
                 interval: float = 0.5, first_backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        self.name, self.is_dead, self.restart = name, is_dead, restart
        self.cleanup, self.on_restart = cleanup, on_restart
        self.interval, self.first_backoff, self.max_backoff = interval, first_backoff, max_backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{name}-restarter", daemon=True)

    def start(self) -> Restarter:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = self.first_backoff
        while not self._stop.wait(self.interval):
            if not self.is_dead():
                backoff = self.first_backoff
                continue
            log.warning("%s died; restarting", self.name, extra={"backoff_s": backoff})
            self.cleanup()
            if self._stop.wait(backoff):
                return
            try:
                self.restart()
            except (RuntimeError, OSError) as exc:
                log.error("%s restart failed", self.name, extra={"error": str(exc)[-500:]})
                backoff = min(self.max_backoff, backoff * 2)
                continue
            self.on_restart()
            log.info("%s restarted", self.name)
            backoff = self.first_backoff
