"""Valid emotion events for tests, built field by field so a test can break exactly one."""

from __future__ import annotations

from ferlite.base.events import Event
from ferlite.base.labels import EMOTIONS

NOW = 1_800_000_000.0  # a fixed "now" (2027-01-15) for tests with a fake clock


def probs_for(label: str, confidence: float = 0.7) -> tuple[float, ...]:
    rest = (1.0 - confidence) / 6
    return tuple(confidence if k == label else rest for k in EMOTIONS)


def event(i: int, label: str = "happy", ts: float = NOW, classroom: str = "room-1", arch: str = "mobilenet_v2",
          uncertain: bool = False, confidence: float = 0.7) -> Event:
    return Event(event_id=f"cam-1:{i}:t{i % 3}", classroom_id=classroom, stream_id="cam-1", track_id=f"t{i % 3}",
                 timestamp=ts, box=(10.0, 20.0, 50.0, 60.0), probabilities=probs_for(label, confidence),
                 label=label, confidence=confidence, uncertain=uncertain, architecture=arch, model_version="1")
