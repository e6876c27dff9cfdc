"""Face detection's pipeline (`FaceService.process`) without gRPC, a detector model or a classifier:
a scripted detector and scripted classify/record callables (test doubles, named as such) show
exactly what the pipeline sends downstream and what it makes of the answers."""

from __future__ import annotations

import numpy as np
import pytest

from ferlite.base.events import Event
from ferlite.services.common.metrics import ServiceMetrics
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.detectors import Face
from ferlite.services.facedetect.pipeline import ClassifierAnswer, FaceService, FrameInfo
from ferlite.services.facedetect.tracking import Track

HAPPY = [0.05, 0.05, 0.05, 0.7, 0.05, 0.05, 0.05]
FLAT = [0.2, 0.1, 0.1, 0.25, 0.15, 0.1, 0.1]


class ScriptedDetector:
    name = "scripted"

    def __init__(self, boxes: list[tuple[float, float, float, float]]) -> None:
        self.boxes = boxes

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return [Face(box, 0.9) for box in self.boxes]


class Downstream:
    """Scripted classifier and aggregator: keep what they were given, answer from a script."""

    def __init__(self, probs: list[list[float]], uncertain: list[bool], stored: bool = True) -> None:
        self.probs, self.uncertain, self.stored = probs, uncertain, stored
        self.crops: list[np.ndarray] = []
        self.events: list[list[Event]] = []

    def classify(self, crops: np.ndarray, routing_key: str, timeout: float) -> ClassifierAnswer:
        self.crops.append(crops)
        return ClassifierAnswer(np.array(self.probs[:len(crops)]), "mobilenet_v2", "7",
                                np.array(self.uncertain[:len(crops)]))

    def record(self, events: list[Event], timeout: float) -> bool:
        self.events.append(events)
        return self.stored


def service(boxes, uncertain_below: float = 0.0) -> FaceService:
    config = FaceDetectConfig(crop_size=32, uncertain_below=uncertain_below, metrics_port=-1)
    return FaceService(config, ScriptedDetector(boxes), ServiceMetrics("facedetect-test"))


def info(**kw) -> FrameInfo:
    base = {"classroom_id": "room-1", "stream_id": "cam", "frame_index": 3, "timestamp": 1000.0,
            "previous_tracks": [], "record": True, "session_id": "s1"}
    return FrameInfo(**{**base, **kw})


FRAME = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
BOXES = [(20.0, 30.0, 60.0, 60.0), (200.0, 40.0, 70.0, 70.0)]


def test_all_faces_of_a_frame_go_in_one_call_as_uint8_crops_and_events_carry_no_pixels() -> None:
    down = Downstream([HAPPY, FLAT], [False, True])
    result = service(BOXES).process(FRAME, info(), down.classify, down.record)
    assert len(down.crops) == 1 and down.crops[0].shape == (2, 32, 32, 3) and down.crops[0].dtype == np.uint8
    assert [f.label for f in result.faces] == ["happy", "happy"]
    assert [f.uncertain for f in result.faces] == [False, True]  # the model's own flag, threshold unset
    assert result.recorded and result.architecture == "mobilenet_v2" and result.model_version == "7"
    (events,) = down.events
    assert [e.box for e in events] == BOXES and all(e.timestamp == 1000.0 for e in events)
    for e in events:  # labels, scores, boxes, ids: nothing the size of a face
        assert all(not isinstance(v, np.ndarray | bytes) for v in vars(e).values())
    assert len({e.event_id for e in events}) == 2


def test_a_service_threshold_overrides_the_model_flag() -> None:
    down = Downstream([HAPPY, FLAT], [True, False])
    result = service(BOXES, uncertain_below=0.5).process(FRAME, info(), down.classify, down.record)
    assert [f.uncertain for f in result.faces] == [False, True]  # 0.7 kept, 0.25 below 0.5


def test_tracks_carry_over_and_event_ids_are_unique_per_session_and_classroom() -> None:
    svc = service(BOXES[:1])
    first = Downstream([HAPPY], [False])
    a = svc.process(FRAME, info(), first.classify, first.record).faces[0]
    moved = [Track(a.track_id, (22.0, 31.0, 60.0, 60.0))]
    b = svc.process(FRAME, info(frame_index=4, previous_tracks=moved), first.classify, first.record).faces[0]
    assert b.track_id == a.track_id  # the same face, a frame later
    again = svc.process(FRAME, info(), first.classify, first.record).faces[0]
    assert again.event_id == a.event_id  # a retry of the same frame: the same id (idempotent)
    other_session = svc.process(FRAME, info(session_id="s2"), first.classify, first.record).faces[0]
    other_room = svc.process(FRAME, info(classroom_id="room-2"), first.classify, first.record).faces[0]
    assert len({a.event_id, other_session.event_id, other_room.event_id}) == 3


@pytest.mark.parametrize("record", [True, False])
def test_no_face_means_no_downstream_call_and_record_false_stores_nothing(record) -> None:
    down = Downstream([HAPPY], [False])
    empty = service([]).process(FRAME, info(record=record), down.classify, down.record)
    assert empty.faces == [] and not empty.recorded and down.crops == [] and down.events == []
    result = service(BOXES[:1]).process(FRAME, info(record=False), down.classify, down.record)
    assert len(result.faces) == 1 and not result.recorded and down.events == []


def test_an_unreachable_aggregator_is_reported_not_hidden() -> None:
    down = Downstream([HAPPY], [False], stored=False)
    result = service(BOXES[:1]).process(FRAME, info(), down.classify, down.record)
    assert len(result.faces) == 1 and result.recorded is False
