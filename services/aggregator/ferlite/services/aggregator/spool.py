"""A durable on-disk queue of event batches for when Redis is unreachable.

Each batch is one file, written to a temporary name, fsynced and renamed (atomic on POSIX), so a
crash leaves either the whole batch or nothing. Files are named by a sequence number and
replayed oldest first; a batch is deleted only after Redis has stored it. Replaying is safe to
repeat because recording is idempotent by event id. Spooled batches hold the same fields as the
events themselves: labels, scores, boxes and pseudonymous ids, never pixels.

A file starts with a checksum line (`ferlite-spool 1 <sha256 of the rest> <events>`), so a file
damaged on disk (truncated, overwritten, a bad sector) is recognised instead of replayed or crashing
the reader: it is moved to `corrupt/` beside the spool (path logged, counted in `corrupt_files`),
and the batches after it replay. The folder is the owner's only (0700, files 0600): it holds
classroom events.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from ferlite.base.events import Event

log = logging.getLogger("ferlite.aggregator.spool")
MAGIC = b"ferlite-spool 1"
CORRUPT_DIR = "corrupt"


class SpoolCorrupt(ValueError):
    """A spool file failed its checksum or cannot be parsed; the message names the file."""


class SpoolFull(OSError):
    """The spool is at its size limit: the batch is not acknowledged (the caller resends it)."""


class Spool:
    def __init__(self, directory: str | Path, max_bytes: int = 1 << 30) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        self._lock = threading.Lock()
        self.corrupt_files = 0  # moved aside since this process started
        self.on_corrupt = lambda path: None  # the aggregator counts it in a metric
        files = self._files()
        self._next = int(files[-1].stem) + 1 if files else 1
        # file name -> (events in it, its bytes): the depth kept exact, and the size limit
        self._files_held: dict[str, tuple[int, int]] = {}
        for f in files:  # a file that cannot be read is moved aside here, not a crash loop at start
            events = self._load(f)
            if events is not None:
                self._files_held[f.name] = (len(events), f.stat().st_size)

    def _files(self) -> list[Path]:
        return sorted(self.dir.glob("*.json"))

    @staticmethod
    def _read(path: Path) -> list[Event]:
        """The batch in `path`; SpoolCorrupt when its checksum or content is wrong."""
        raw = path.read_bytes()
        if raw.startswith(MAGIC):
            head, _, body = raw.partition(b"\n")
            parts = head.split(b" ")
            if len(parts) != 4 or hashlib.sha256(body).hexdigest().encode() != parts[2]:
                raise SpoolCorrupt(f"{path}: checksum mismatch (the file was damaged after it was written)")
        else:  # a file spooled before checksums existed: plain JSON, parsed below
            body = raw
        try:
            return [Event.from_dict(d) for d in json.loads(body)]
        except (ValueError, TypeError, KeyError) as exc:
            raise SpoolCorrupt(f"{path}: {type(exc).__name__}: {str(exc)[:100]}") from None

    def _load(self, path: Path) -> list[Event] | None:
        """The batch, or None after moving a corrupt file aside (caller holds the lock or is __init__)."""
        try:
            return self._read(path)
        except SpoolCorrupt as exc:
            self._quarantine(path, str(exc))
            return None
        except FileNotFoundError:
            return None

    def _quarantine(self, path: Path, why: str) -> None:
        aside = self.dir / CORRUPT_DIR
        aside.mkdir(exist_ok=True, mode=0o700)
        target = aside / path.name
        os.replace(path, target)
        self._files_held.pop(path.name, None)
        self.corrupt_files += 1
        log.error("corrupt spool file moved aside; the batches after it replay", extra={
            "file": str(target), "error": why})
        self.on_corrupt(target)

    def append(self, events: list[Event]) -> None:
        """Write the batch durably (fsync of file and folder) before returning: only then may the
        caller answer spooled=true. An OSError (disk full, read-only) propagates: not acknowledged."""
        body = json.dumps([e.to_dict() for e in events], separators=(",", ":")).encode()
        head = b"%s %s %d\n" % (MAGIC, hashlib.sha256(body).hexdigest().encode(), len(events))
        with self._lock:
            size = len(head) + len(body)
            if self._held_bytes() + size > self.max_bytes:
                raise SpoolFull(28, f"the spool is at its limit ({self.max_bytes / 2**20:.0f} MiB)")
            path = self.dir / f"{self._next:012d}.json"
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(head + body)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._next += 1
            self._files_held[path.name] = (len(events), size)

    def oldest(self) -> tuple[Path, list[Event]] | None:
        """The oldest readable batch; corrupt files met on the way are moved aside (and leave the
        depth: their events cannot be counted)."""
        with self._lock:
            for path in self._files():
                events = self._load(path)
                if events is not None:
                    return path, events
            return None

    def remove(self, path: Path) -> None:
        with self._lock:
            path.unlink(missing_ok=True)
            self._files_held.pop(path.name, None)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._held_bytes()

    def _held_bytes(self) -> int:
        """Bytes of the spooled files (the caller holds the lock)."""
        return sum(b for _, b in self._files_held.values())

    @property
    def depth(self) -> int:
        """Events waiting to be replayed."""
        with self._lock:
            return sum(n for n, _ in self._files_held.values())
