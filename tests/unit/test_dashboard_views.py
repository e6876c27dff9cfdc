"""The dashboard's API figures from an aggregator summary (issue 28): shares of the faces kept sum
to 1, the uncertain share stands beside them instead of inside a label, and the models that
answered are named with their share."""

from __future__ import annotations

import pytest

from ferlite.base.labels import EMOTIONS
from ferlite.services.dashboard import views
from ferlite.v1 import aggregator_pb2 as pb


def _counts(**n: int) -> list[pb.LabelCount]:
    return [pb.LabelCount(label=k, count=n.get(k, 0)) for k in EMOTIONS]


def test_shares_are_of_kept_faces_and_uncertain_is_apart() -> None:
    # 10 faces: 6 happy (1 uncertain), 3 sad, 1 fear uncertain -> kept: 5 happy, 3 sad
    summary = pb.ClassroomSummary(
        classroom_id="room-1", start_time=1000.0, end_time=1900.0, total_events=10,
        distribution=_counts(happy=6, sad=3, fear=1), kept=_counts(happy=5, sad=3), uncertain_share=0.2,
        models=[pb.ModelCount(architecture="mobilenet_v2", count=9), pb.ModelCount(architecture="mobilenet_v3_small",
                                                                                  count=1)],
        per_minute=[pb.MinuteCounts(minute_start=1020.0, counts=_counts(happy=6, sad=3, fear=1),
                                    kept=_counts(happy=5, sad=3), uncertain=2)])
    out = views.summary(summary, 900.0)
    assert list(out["shares"]) == list(EMOTIONS) and sum(out["shares"].values()) == pytest.approx(1.0)
    assert out["shares"]["happy"] == pytest.approx(5 / 8) and out["shares"]["fear"] == 0.0
    assert out["uncertain_share"] == pytest.approx(0.2) and out["events"] == 10 and out["kept_events"] == 8
    assert out["models"] == {"mobilenet_v2": {"events": 9, "share": 0.9},
                             "mobilenet_v3_small": {"events": 1, "share": 0.1}}
    (minute,) = out["timeline"]
    assert minute["events"] == 10 and minute["kept_events"] == 8 and minute["uncertain_share"] == pytest.approx(0.2)
    assert sum(minute["shares"].values()) == pytest.approx(1.0)
    assert out["window_seconds"] == 900.0 and set(out) >= {"start_time", "end_time", "classroom_id"}


def test_an_empty_window_has_zero_shares_not_a_division_by_zero() -> None:
    out = views.summary(pb.ClassroomSummary(classroom_id="room-1", kept=_counts(), distribution=_counts()), 300.0)
    assert out["events"] == 0 and set(out["shares"].values()) == {0.0} and out["models"] == {}
    assert out["timeline"] == []
