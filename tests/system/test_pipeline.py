"""The per-frame pipeline through three real services: face detection -> classifier on a real
Triton -> aggregator on a real Redis. One Process call per frame."""

from __future__ import annotations

import cv2
import grpc
import pytest
from skimage import data

from ferlite.base.architectures import ARCHITECTURES
from ferlite.base.labels import EMOTIONS
from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import build as build_aggregator
from ferlite.services.classifier.config import ClassifierConfig
from ferlite.services.classifier.server import build as build_classifier
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.server import build as build_facedetect
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc
from tests.conftest import TINY_SIZE


def jpeg(rgb) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


@pytest.fixture(scope="module")
def stack(exported_models, tmp_path_factory):
    work = tmp_path_factory.mktemp("pipeline")
    aggregator = build_aggregator(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(work / "agg"),
                                                   model_dir=str(exported_models))).start()
    classifier = build_classifier(ClassifierConfig(
        min_val_accuracy=0.0,
        port=0, metrics_port=-1, model_dir=str(exported_models),
            triton_metrics_port=0, repository_dir=str(work / "triton"))).start()
    facedetect = build_facedetect(FaceDetectConfig(
        port=0, metrics_port=-1, crop_size=TINY_SIZE, classifier_url=f"127.0.0.1:{classifier.port}",
        aggregator_url=f"127.0.0.1:{aggregator.port}")).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{facedetect.port}")
    agg_channel = grpc.insecure_channel(f"127.0.0.1:{aggregator.port}")
    yield pb_grpc.FaceDetectionStub(channel), aggregator_pb2_grpc.AggregatorStub(agg_channel), aggregator
    channel.close()
    agg_channel.close()
    for server in (facedetect, classifier, aggregator):
        server.stop(0)


def _summary(agg, classroom: str) -> aggregator_pb2.ClassroomSummary:
    return agg.GetSummary(aggregator_pb2.SummaryRequest(classroom_id=classroom, window_seconds=600))


def test_one_call_per_frame_detects_classifies_and_records(stack) -> None:
    stub, agg, _ = stack
    frame = pb.Frame(encoded=jpeg(data.astronaut()))
    reply = stub.Process(pb.ProcessRequest(frame=frame, classroom_id="room-a", stream_id="cam-1", frame_index=0,
                                           record=True, session_id="run-1"))
    assert len(reply.faces) == 1 and reply.recorded
    face = reply.faces[0]
    assert face.classification.label in EMOTIONS and len(face.classification.probabilities) == 7
    assert reply.model.architecture in ARCHITECTURES and reply.model.model_version == "1"
    assert face.event_id.startswith("cam-1:") and face.event_id.endswith(f":0:{face.track_id}")
    assert reply.detect_ms > 0 and reply.classify_ms > 0 and reply.record_ms > 0
    summary = _summary(agg, "room-a")
    assert summary.total_events == 1
    assert {c.label: c.count for c in summary.distribution}[face.classification.label] == 1

    again = stub.Process(pb.ProcessRequest(frame=frame, classroom_id="room-a", stream_id="cam-1", frame_index=0,
                                           record=True, session_id="run-1"))  # a client retry of the same frame
    assert again.faces[0].event_id == face.event_id
    assert _summary(agg, "room-a").total_events == 1

    tracks = [pb.Track(track_id=f.track_id, box=f.box) for f in reply.faces]
    nxt = stub.Process(pb.ProcessRequest(frame=frame, classroom_id="room-a", stream_id="cam-1", frame_index=1,
                                         previous_tracks=tracks, record=True, session_id="run-1"))
    assert nxt.faces[0].track_id == face.track_id
    assert _summary(agg, "room-a").total_events == 2


def test_two_runs_and_two_classrooms_store_every_event(stack) -> None:
    """The same file streamed twice (two sessions) and one stream id in two classrooms: nothing is
    dropped as a duplicate; a retry inside a run still counts once."""
    stub, agg, _ = stack
    frame = pb.Frame(encoded=jpeg(data.astronaut()))
    for classroom, session in (("room-x", "run-a"), ("room-x", "run-b"), ("room-y", "run-a"), ("room-x", "run-a")):
        reply = stub.Process(pb.ProcessRequest(frame=frame, classroom_id=classroom, stream_id="same-cam",
                                               frame_index=0, record=True, session_id=session))
        assert reply.recorded and len(reply.faces) == 1
    assert _summary(agg, "room-x").total_events == 2   # run-a (retried once) and run-b
    assert _summary(agg, "room-y").total_events == 1
    with pytest.raises(grpc.RpcError) as err:
        stub.Process(pb.ProcessRequest(frame=frame, classroom_id="room-x", stream_id="same-cam", frame_index=0,
                                       record=True))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "session_id" in err.value.details()


def test_no_record_and_no_face_frames(stack) -> None:
    stub, agg, _ = stack
    reply = stub.Process(pb.ProcessRequest(frame=pb.Frame(encoded=jpeg(data.astronaut())), classroom_id="room-b",
                                           stream_id="cam-2", record=False))
    assert len(reply.faces) == 1 and not reply.recorded
    empty = stub.Process(pb.ProcessRequest(frame=pb.Frame(encoded=jpeg(data.coffee())), classroom_id="room-b",
                                           stream_id="cam-2", frame_index=1, record=True, session_id="run-1"))
    assert len(empty.faces) == 0 and not empty.recorded
    assert _summary(agg, "room-b").total_events == 0


def test_process_needs_classroom_and_stream(stack) -> None:
    stub, _, _ = stack
    with pytest.raises(grpc.RpcError) as err:
        stub.Process(pb.ProcessRequest(frame=pb.Frame(encoded=jpeg(data.astronaut()))))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "classroom_id is required; stream_id is required" in err.value.details()
