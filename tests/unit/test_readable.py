"""Issue 28 (readable numbers): shares in percent, windows in words, and what a figure covers."""

from __future__ import annotations

from ferlite.app.readable import classroom_line, shares, window
from ferlite.v1 import aggregator_pb2


def test_windows_read_as_words() -> None:
    assert window(45) == "last 45 s"
    assert window(900) == "last 15 min"
    assert window(3600) == "last 1 h"
    assert window(5400) == "last 1 h 30 min"
    assert window(604800) == "last 7 days"


def test_shares_are_percent_largest_first() -> None:
    assert shares({"happy": 3, "sad": 1, "angry": 0}) == "happy 75 %, sad 25 %"
    assert shares({}) == "no faces"


def test_the_classroom_line_says_what_it_covers() -> None:
    s = aggregator_pb2.ClassroomSummary(classroom_id="room-1", start_time=1000.0, end_time=1900.0, total_events=40,
                                        uncertain_share=0.1,
                                        distribution=[aggregator_pb2.LabelCount(label="neutral", count=30),
                                                      aggregator_pb2.LabelCount(label="happy", count=10)])
    line = classroom_line(s)
    assert line == ("classroom room-1, last 15 min (every run, as stored): 40 faces; neutral 75 %, happy 25 %; "
                    "10% marked uncertain")
