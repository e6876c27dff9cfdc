"""A durable on-disk queue of event batches for when Redis is unreachable.

Each batch is one file, written to a temporary name, fsynced and renamed (atomic on POSIX), so a
crash leaves either the whole batch or nothing. Files are named by a sequence number and
replayed oldest first; a batch is deleted only after Redis has stored it. Replaying is safe to
repeat because recording is idempotent by event id. Spooled batches hold the same fields as the
events themselves: labels, scores, boxes and pseudonymous ids, never pixels.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

from ferlite.base.events import Event


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        files = self._files()
        self._next = int(files[-1].stem) + 1 if files else 1
        self._depth = sum(len(self._read(f)) for f in files)

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*.json"))

    @staticmethod
    def _read(path: Path) -> list[Event]:
        return [Event.from_dict(d) for d in json.loads(path.read_text())]

    def append(self, events: list[Event]) -> None:
        with self._lock:
            path = self.dir / f"{self._next:012d}.json"
            tmp = path.with_suffix(".tmp")
            with tmp.open("w") as fh:
                json.dump([e.to_dict() for e in events], fh, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._next += 1
            self._depth += len(events)

    def oldest(self) -> tuple[Path, list[Event]] | None:
        with self._lock:
            files = self._files()
            return (files[0], self._read(files[0])) if files else None

    def remove(self, path: Path, count: int) -> None:
        with self._lock:
            path.unlink(missing_ok=True)
            self._depth = max(0, self._depth - count)

    @property
    def depth(self) -> int:
        """Events waiting to be replayed."""
        return self._depth
