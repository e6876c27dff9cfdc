"""Emotion events as plain Python objects, and their validation.

The gRPC layer converts protobuf messages into `Event`s; everything below it (validation, the
Redis store, the spool, drift) works on these, so it is tested without gRPC. There is no field
for pixels: an event cannot carry a face.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ferlite.base.architectures import ARCHITECTURES
from ferlite.base.event_rules import ID_RULE, NAME_RULE, box_ok, is_id, is_name, shown, timestamp_problem
from ferlite.base.labels import EMOTIONS, NUM_CLASSES
from ferlite.v1 import aggregator_pb2 as pb
from ferlite.v1 import common_pb2

SUM_TOLERANCE = 0.01


@dataclass(frozen=True)
class Event:
    event_id: str
    classroom_id: str
    stream_id: str
    track_id: str
    timestamp: float                 # seconds since epoch
    box: tuple[float, float, float, float]   # x, y, width, height in pixels
    probabilities: tuple[float, ...]  # canonical label order
    label: str
    confidence: float
    uncertain: bool
    architecture: str
    model_version: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Event:
        return cls(**{**d, "box": tuple(d["box"]), "probabilities": tuple(d["probabilities"])})


class InvalidEvent(ValueError):
    """One event of a batch is invalid; the message names its index, id and field."""


def validate_event(e: Event, index: int, now: float, max_future: float, retention: float) -> None:
    def bad(field: str, why: str) -> InvalidEvent:
        return InvalidEvent(f"events[{index}] (id {e.event_id[:130]!r}): {field} {why}")

    if not is_id(e.event_id):
        raise bad("event_id", f"must be {ID_RULE}")
    for name in ("classroom_id", "stream_id"):
        if not is_name(getattr(e, name)):
            raise bad(name, f"is required: {NAME_RULE}")
    if e.track_id and not is_id(e.track_id):
        raise bad("track_id", f"must be {ID_RULE}")
    problem = timestamp_problem(e.timestamp, now, max_future, retention)
    if problem:
        raise bad("timestamp", problem)
    if len(e.probabilities) != NUM_CLASSES:
        raise bad("probabilities", f"has {len(e.probabilities)} values, expected {NUM_CLASSES}")
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in e.probabilities):
        raise bad("probabilities", "must be finite values in [0, 1]")
    total = sum(e.probabilities)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise bad("probabilities", f"sum to {total:.4f}, expected 1 ± {SUM_TOLERANCE}")
    if e.label not in EMOTIONS:
        raise bad("label", f"{shown(e.label)} is not one of {', '.join(EMOTIONS)}")
    if not (math.isfinite(e.confidence) and 0.0 <= e.confidence <= 1.0):
        raise bad("confidence", "must be in [0, 1]")
    if not box_ok(*e.box):
        raise bad("box", "must be finite with non-negative width and height")
    if e.architecture not in ARCHITECTURES:
        raise bad("model.architecture", f"{shown(e.architecture)} is not one of {', '.join(ARCHITECTURES)}")
    if not e.model_version or len(e.model_version) > 32:
        raise bad("model.model_version", "is required (at most 32 characters)")


def validate_batch(events: list[Event], now: float, max_batch: int, max_future: float, retention: float) -> None:
    """Validate the whole batch before anything is stored (all or nothing)."""
    if not events:
        raise InvalidEvent("events: the batch is empty")
    if len(events) > max_batch:
        raise InvalidEvent(f"events: {len(events)} events exceed the limit of {max_batch} per call")
    seen: set[str] = set()
    for i, e in enumerate(events):
        validate_event(e, i, now, max_future, retention)
        if e.event_id in seen:
            raise InvalidEvent(f"events[{i}] (id {e.event_id[:130]!r}): event_id repeats within the batch")
        seen.add(e.event_id)


# Converters between the event type and the contract's message (face detection sends events,
# the aggregator receives them: one pair, here in the base both import).
def event_from_pb(m: pb.EmotionEvent) -> Event:
    return Event(
        event_id=m.event_id, classroom_id=m.classroom_id, stream_id=m.stream_id, track_id=m.track_id,
        timestamp=m.timestamp, box=(m.box.x, m.box.y, m.box.width, m.box.height),
        probabilities=tuple(float(p) for p in m.probabilities), label=m.label, confidence=m.confidence,
        uncertain=m.uncertain, architecture=m.model.architecture, model_version=m.model.model_version)


def event_to_pb(e: Event) -> pb.EmotionEvent:
    return pb.EmotionEvent(
        event_id=e.event_id, classroom_id=e.classroom_id, stream_id=e.stream_id, track_id=e.track_id,
        timestamp=e.timestamp, box=common_pb2.BoundingBox(x=e.box[0], y=e.box[1], width=e.box[2], height=e.box[3]),
        probabilities=list(e.probabilities), label=e.label, confidence=e.confidence, uncertain=e.uncertain,
        model=common_pb2.ModelRef(architecture=e.architecture, model_version=e.model_version))
