"""What the dashboard's API answers, made from the aggregator's summary: free of HTTP and gRPC calls.

Shares are fractions of the faces *kept* (not marked uncertain), so the seven labels sum to 1
whenever a face was kept; the uncertain share is given beside them, of all faces, never hidden
inside a label. Nothing here names a student or a seat: the aggregator's counts have neither.
"""

from __future__ import annotations

from typing import Any

from ferlite.base.labels import EMOTIONS
from ferlite.v1 import aggregator_pb2 as pb

# The windows the page offers, in seconds ("today" is the browser's local midnight until now).
WINDOWS = {"5 min": 300, "15 min": 900, "60 min": 3600}
MAX_WINDOW_SECONDS = 7 * 86400


def shares(counts: dict[str, int]) -> dict[str, float]:
    """Each label's fraction of the counted faces, all seven present; all 0 when there are none."""
    total = sum(counts.values())
    return {label: (counts.get(label, 0) / total if total else 0.0) for label in EMOTIONS}


def _counts(rows: Any) -> dict[str, int]:
    return {row.label: int(row.count) for row in rows}


def summary(s: pb.ClassroomSummary, window_seconds: float) -> dict[str, Any]:
    """GET /api/classrooms/{id}/summary: the whole window, the model(s) that answered, and one row
    per minute that had faces (the timeline)."""
    kept = _counts(s.kept)
    model_events = {m.architecture: int(m.count) for m in s.models}
    all_models = sum(model_events.values())
    timeline = []
    for minute in s.per_minute:
        minute_kept = _counts(minute.kept)
        events = sum(_counts(minute.counts).values())
        timeline.append({"start": minute.minute_start, "events": events, "kept_events": sum(minute_kept.values()),
                         "uncertain_share": (minute.uncertain / events if events else 0.0),
                         "shares": shares(minute_kept)})
    return {
        "classroom_id": s.classroom_id,
        "window_seconds": window_seconds,
        "start_time": s.start_time,
        "end_time": s.end_time,
        "events": int(s.total_events),
        "kept_events": sum(kept.values()),
        "shares": shares(kept),
        "uncertain_share": s.uncertain_share,
        "models": {arch: {"events": n, "share": n / all_models} for arch, n in model_events.items()},
        "timeline": timeline,
    }
