"""The rules every emotion event obeys, in the base so that face detection checks a request at its
door with exactly the rules the aggregator stores by (one validator, shared, no service importing
another). Patterns are matched whole (`fullmatch`): `re.match` with `^...$` accepts a trailing
newline.
"""

from __future__ import annotations

import math
import re

ID_PATTERN = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._\-]{1,64}")
NAME_RULE = "1-64 characters of letters, digits and . _ -"
ID_RULE = "1-128 characters of letters, digits and . _ : -"
# Track ids a camera sends back (previous_tracks): short, no ':' (they end the event id, which has
# 128 characters at most), as face detection makes them ("t" and 12 hex digits).
TRACK_PATTERN = re.compile(r"[A-Za-z0-9._\-]{1,32}")
TRACK_RULE = "1-32 characters of letters, digits and . _ -"
MAX_FUTURE_SECONDS = 300.0
RETENTION_SECONDS = 7 * 24 * 3600.0


SHOWN_CHARS = 60  # at most this much of a caller's bad value goes back in an error message


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A bad value for an error message: its repr, cut to `limit` characters with the length said,
    so an error never echoes a megabyte payload (into logs, metrics labels or the caller)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    return f"{text[:limit]!r}... ({len(text)} characters)"


def is_name(value: str) -> bool:
    """A classroom or stream id."""
    return NAME_PATTERN.fullmatch(value) is not None


def box_ok(x: float, y: float, width: float, height: float) -> bool:
    """A face box: finite numbers, a non-negative width and height."""
    return all(math.isfinite(v) for v in (x, y, width, height)) and width >= 0 and height >= 0


def is_track(value: str) -> bool:
    """A track id a client may send back."""
    return TRACK_PATTERN.fullmatch(value) is not None


def is_id(value: str) -> bool:
    """An event or track id."""
    return ID_PATTERN.fullmatch(value) is not None


def timestamp_problem(timestamp: float, now: float, max_future: float = MAX_FUTURE_SECONDS,
                      retention: float = RETENTION_SECONDS) -> str | None:
    """Why `timestamp` cannot be stored, or None."""
    if not math.isfinite(timestamp) or timestamp <= 0:
        return "is required (seconds since epoch)"
    if timestamp > now + max_future:
        return f"is {timestamp - now:.0f} s in the future (limit {max_future:.0f} s)"
    if timestamp < now - retention:
        return "is older than the retention window"
    return None


def safe_name(text: str, fallback: str = "stream") -> str:
    """`text` made into a valid name: other characters become '-', cut to 64 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._\-]+", "-", text).strip("-")[:64]
    return cleaned or fallback
