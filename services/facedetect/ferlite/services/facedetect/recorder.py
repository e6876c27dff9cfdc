"""Recording off a frame's path, for ProcessStream: free of gRPC.

A `StreamRecorder` belongs to one stream. The frame's result goes back to the camera at once; its
events wait here, and a thread records everything waiting in one call (frames that arrive while a
call is out share the next one), then reports which frames are stored and which failed. Nothing is
acknowledged before the aggregator answered, so "no acknowledged event lost" holds as for Process;
what changes is that the camera does not wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ferlite.base.events import Event

from .pipeline import Record

log = logging.getLogger("ferlite.facedetect.recorder")

# (stored frame indices, failed frame indices)
OnAck = Callable[[list[int], list[int]], None]


class StreamRecorder:
    def __init__(self, record: Record, on_ack: OnAck, timeout: float, max_events: int = 256) -> None:
        self.record, self.on_ack, self.timeout, self.max_events = record, on_ack, timeout, max_events
        self._waiting: list[tuple[int, list[Event]]] = []
        self._cond = threading.Condition()
        self._closed = False
        # Started by the first frame: a stream that opens and never sends costs no thread.
        self._thread: threading.Thread | None = None

    def submit(self, frame_index: int, events: list[Event]) -> None:
        """A frame's events (none when it had no face: acknowledged as stored with the next batch)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the stream's recorder is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="stream-recorder", daemon=True)
                self._thread.start()
            self._waiting.append((frame_index, events))
            self._cond.notify()

    def close(self, wait: float = 30.0) -> None:
        """No more frames: record what waits, report it, and stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(wait)

    def _take(self) -> list[tuple[int, list[Event]]] | None:
        """The next batch: whole frames up to max_events (at least one frame); None when closed and empty."""
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if not self._waiting:
                return None
            batch, events = [], 0
            while self._waiting and (not batch or events + len(self._waiting[0][1]) <= self.max_events):
                frame = self._waiting.pop(0)
                batch.append(frame)
                events += len(frame[1])
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            frames = [index for index, _ in batch]
            events = [e for _, evs in batch for e in evs]
            try:
                stored = True if not events else self.record(events, self.timeout)
            except Exception:  # a failed batch is reported, never the end of the stream
                log.exception("recording a stream's events failed")
                stored = False
            if stored:
                self.on_ack(frames, [])
            else:
                self.on_ack([], frames)
