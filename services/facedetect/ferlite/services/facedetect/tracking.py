"""Stateless track assignment: the client sends the previous frame's tracks, we match by IoU.

Keeping no state in the service means any replica can serve any frame of a stream. A new face
gets a pseudonymous id derived from the stream, frame index and detection order, never from its
pixels, so ids (and the event ids built from them) are the same when a frame is retried.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from .detectors import iou

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Track:
    track_id: str
    box: Box


def _xyxy(box: Box) -> np.ndarray:
    x, y, w, h = box
    return np.array([x, y, x + w, y + h], dtype=np.float64)


def new_track_id(stream_id: str, frame_index: int, order: int) -> str:
    digest = hashlib.blake2b(f"{stream_id}\x00{frame_index}\x00{order}".encode(), digest_size=6).hexdigest()
    return f"t{digest}"


def assign(boxes: list[Box], previous: list[Track], stream_id: str, frame_index: int,
           threshold: float = 0.3) -> list[str]:
    """A track id per box: the best-overlapping previous track (IoU >= threshold, each used once),
    or a fresh pseudonymous id."""
    ids: list[str | None] = [None] * len(boxes)
    if boxes and previous:
        prev = np.stack([_xyxy(t.box) for t in previous])
        pairs = []
        for i, box in enumerate(boxes):
            overlaps = iou(_xyxy(box), prev)
            pairs += [(float(o), i, j) for j, o in enumerate(overlaps) if o >= threshold]
        used: set[int] = set()
        for _, i, j in sorted(pairs, reverse=True):
            if ids[i] is None and j not in used:
                ids[i] = previous[j].track_id
                used.add(j)
    return [tid or new_track_id(stream_id, frame_index, i) for i, tid in enumerate(ids)]


def event_id(classroom_id: str, stream_id: str, session_id: str, frame_index: int, track_id: str) -> str:
    """Deterministic within one run, unique across runs and classrooms.

    A retried frame (same session, same index) gets the same ids, so it never counts twice; the same
    file streamed again (a new session) or the same stream id in another classroom gets new ids, so
    its events are stored instead of being dropped as duplicates."""
    run = hashlib.blake2b(f"{classroom_id}\x00{stream_id}\x00{session_id}".encode(), digest_size=8).hexdigest()
    return f"{stream_id[:40]}:{run}:{frame_index}:{track_id}"
