"""One set of event rules: face detection refuses at its door what the aggregator would refuse,
instead of answering OK with recorded=false after doing all the work."""

from __future__ import annotations

import math
import time

import cv2
import grpc
import numpy as np
import pytest

from ferlite.base.event_rules import is_id, is_name, safe_name
from ferlite.base.events import InvalidEvent, validate_event
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.server import build
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc
from tests.support.events import event

BAD_NAMES = ["room 1", "clásica", "r" * 65, "room\n", ""]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_match_whole(name) -> None:
    assert not is_name(name)
    assert not is_id(name + "\n")


def test_aggregator_refuses_a_trailing_newline() -> None:
    with pytest.raises(InvalidEvent, match="classroom_id"):
        validate_event(event(1, "happy", classroom="room\n"), 0, time.time(), 300, 86400)


def test_default_stream_ids_from_file_names_are_valid() -> None:
    assert is_name(safe_name("demo-my clip (1)"))
    assert safe_name("demo-my clip (1)") == "demo-my-clip-1"
    assert is_name(safe_name("é" * 200))


@pytest.fixture(scope="module")
def stub():
    server = build(FaceDetectConfig(port=0, metrics_port=0, detector="haar", crop_size=48,
                                    classifier_url="127.0.0.1:9", aggregator_url="127.0.0.1:9")).start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.FaceDetectionStub(channel), server
    server.stop(0)


JPEG = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()


@pytest.mark.parametrize(("change", "needle"), [
    *[({"classroom_id": n}, "classroom_id") for n in BAD_NAMES],
    ({"stream_id": "my clip.mp4"}, "stream_id"),
    ({"timestamp": time.time() + 3600}, "in the future"),
    ({"timestamp": time.time() - 30 * 86400}, "older than the retention"),
    ({"timestamp": math.nan}, "timestamp is required"),
])
def test_process_refuses_unstorable_events_before_any_work(stub, change, needle) -> None:
    client, server = stub
    fields = {"classroom_id": "room-1", "stream_id": "cam-1", "record": True, **change}
    before = server.metrics.registry.get_sample_value("ferlite_facedetect_detect_duration_seconds_count",
                                                      {"detector": "haar"}) or 0
    with pytest.raises(grpc.RpcError) as err:
        client.Process(pb.ProcessRequest(frame=pb.Frame(encoded=JPEG), **fields), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    after = server.metrics.registry.get_sample_value("ferlite_facedetect_detect_duration_seconds_count",
                                                     {"detector": "haar"}) or 0
    assert after == before, "detection ran for a request that had to be refused"


@pytest.mark.parametrize("field", ["label", "architecture"])
def test_a_megabyte_value_is_never_echoed_whole(field) -> None:
    """Issue 25: a 1 MB label or architecture came back whole in the error (and into logs)."""
    import dataclasses

    from tests.support.events import NOW, event

    bad = dataclasses.replace(event(1), **{field: "z" * 1_000_000})
    with pytest.raises(InvalidEvent) as err:
        validate_event(bad, 0, NOW, 300.0, 7 * 24 * 3600.0)
    assert "(1000000 characters)" in str(err.value) and len(str(err.value)) < 300


def test_shown_keeps_short_values_and_cuts_long_ones() -> None:
    from ferlite.base.event_rules import SHOWN_CHARS, shown

    assert shown("happy") == "'happy'" and shown(3.5) == "3.5"
    long = shown("a" * 5000)
    assert long.startswith("'" + "a" * SHOWN_CHARS + "'") and long.endswith("(5000 characters)")
