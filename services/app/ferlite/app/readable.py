"""Numbers a teacher can read: expression shares in percent, time windows in words, and always
what a figure covers (this run, or the classroom's history over a window)."""

from __future__ import annotations

from collections.abc import Mapping

from ferlite.v1 import aggregator_pb2


def window(seconds: float) -> str:
    """600 -> "last 10 min", 5400 -> "last 1 h 30 min", 604800 -> "last 7 days"."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"last {seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"last {minutes} min"
    if minutes < 48 * 60:
        h, m = divmod(minutes, 60)
        return f"last {h} h" + (f" {m} min" if m else "")
    return f"last {round(seconds / 86400)} days"


def shares(counts: Mapping[str, int]) -> str:
    """{"happy": 3, "sad": 1} -> "happy 75 %, sad 25 %" (largest first, labels with none left out)."""
    total = sum(counts.values())
    if not total:
        return "no faces"
    ranked = sorted(((n, label) for label, n in counts.items() if n), reverse=True)
    return ", ".join(f"{label} {100 * n / total:.0f} %" for n, label in ranked)


def classroom_line(summary: aggregator_pb2.ClassroomSummary) -> str:
    """The aggregator's figure for a classroom, saying it covers every run in the window."""
    counts = {c.label: c.count for c in summary.distribution}
    span = window(summary.end_time - summary.start_time)
    return (f"classroom {summary.classroom_id}, {span} (every run, as stored): {summary.total_events:,} faces; "
            f"{shares(counts)}; {summary.uncertain_share:.0%} marked uncertain")
