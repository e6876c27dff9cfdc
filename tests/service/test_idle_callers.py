"""Issue 25: no worker held by a slow, idle or anonymous caller.

Last round 16 idle reflection streams, or 16 unary calls whose body never came, took every worker
thread of a service (Process, RecordEvents and health all timed out), and 16 open dashboards
stopped recording. Here the real face detection (Haar) and the real aggregator (embedded Redis),
each with its default 16 workers, get 100 idle anonymous reflection streams, 100 anonymous calls
whose body never arrives, 50 idle camera streams and 32 dashboards following a classroom, all open
at once; health must answer within 1 s, a camera's Process within 2x its unloaded time, and its
events must still be stored. The classifier is the scripted double (it is not what is attacked).
"""

from __future__ import annotations

import statistics
import threading
import time

import cv2
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from skimage import data

from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import build as build_aggregator
from ferlite.services.common.security import token_metadata
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.server import build as build_facedetect
from ferlite.v1 import aggregator_pb2 as apb
from ferlite.v1 import aggregator_pb2_grpc as apb_grpc
from ferlite.v1 import facedetect_pb2 as fpb
from ferlite.v1 import facedetect_pb2_grpc as fpb_grpc
from tests.support.fakes import RecordingClassifier, serve_classifier

ADMIN = "admin-token-for-the-dashboards"
SERVICE = "pipeline-service-token-000"
CAMERA = "camera-token-of-room-1-0000"
JPEG = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


@pytest.fixture
def stack(tmp_path):
    classifier, classifier_port = serve_classifier(RecordingClassifier())
    tokens = {"auth_token": ADMIN, "service_token": SERVICE, "port": 0, "metrics_port": -1}
    aggregator = build_aggregator(AggregatorConfig(data_dir=str(tmp_path / "agg"), **tokens)).start()
    cameras = tmp_path / "camera-tokens"
    cameras.write_text(f"{CAMERA} room-1\n")
    facedetect = build_facedetect(FaceDetectConfig(
        detector="haar", crop_size=64, classifier_url=f"127.0.0.1:{classifier_port}",
        aggregator_url=f"127.0.0.1:{aggregator.port}", camera_tokens_file=str(cameras), **tokens)).start()
    yield facedetect, aggregator
    facedetect.stop(0)
    aggregator.stop(0)
    classifier.stop(0)


def health_seconds(channel: grpc.Channel) -> float:
    started = time.perf_counter()
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    return time.perf_counter() - started


def test_idle_and_anonymous_callers_hold_no_worker(stack) -> None:
    facedetect, aggregator = stack
    release = threading.Event()

    def never():  # a request stream that sends nothing until the test ends
        release.wait(120)
        return
        yield  # pragma: no cover

    fd = grpc.insecure_channel(f"127.0.0.1:{facedetect.port}")
    agg = grpc.insecure_channel(f"127.0.0.1:{aggregator.port}")
    attackers = [grpc.insecure_channel(f"127.0.0.1:{port}") for port in (facedetect.port, aggregator.port)
                 for _ in range(4)]  # several connections, as several clients would open
    frame_index = [0]

    def camera_frame() -> tuple[float, fpb.ProcessResponse]:
        frame_index[0] += 1
        started = time.perf_counter()
        reply = fpb_grpc.FaceDetectionStub(fd).Process(fpb.ProcessRequest(
            frame=fpb.Frame(encoded=JPEG), classroom_id="room-1", stream_id="cam-1", frame_index=frame_index[0],
            timestamp=time.time(), record=True, session_id="s1"), metadata=token_metadata(CAMERA), timeout=10)
        return time.perf_counter() - started, reply

    try:
        for _ in range(3):  # warm up: connections, the detector, Redis scripts
            camera_frame()
        unloaded = statistics.median(camera_frame()[0] for _ in range(7))

        calls = []
        for k in range(100):  # anonymous reflection streams that never ask anything
            channel = attackers[k % len(attackers)]
            calls.append(channel.stream_stream(REFLECTION)(never()))
        for k in range(100):  # anonymous unary calls whose body never arrives
            if k % 2:
                method = "/ferlite.v1.FaceDetection/Process"
                channel = attackers[k % 4]
            else:
                method = "/ferlite.v1.Aggregator/RecordEvents"
                channel = attackers[4 + k % 4]
            calls.append(channel.stream_unary(method).future(never(), timeout=120))
        for k in range(50):  # cameras that opened a stream and sent nothing
            stub = fpb_grpc.FaceDetectionStub(attackers[k % 4])
            calls.append(stub.ProcessStream(never(), metadata=token_metadata(CAMERA), timeout=120))
        followers = []
        for k in range(32):  # dashboards following the classroom
            stub = apb_grpc.AggregatorStub(attackers[4 + k % 4])
            followers.append(stub.StreamEvents(apb.StreamEventsRequest(classroom_id="room-1"),
                                               metadata=token_metadata(ADMIN), timeout=120))
        time.sleep(2.0)  # every call above is open on the servers

        assert health_seconds(fd) < 1.0 and health_seconds(agg) < 1.0
        loaded = [camera_frame() for _ in range(7)]
        under_attack = statistics.median(seconds for seconds, _ in loaded)
        assert all(reply.recorded and reply.faces for _, reply in loaded)
        assert under_attack <= 2 * unloaded, f"Process {under_attack * 1000:.0f} ms under attack, " \
                                             f"{unloaded * 1000:.0f} ms unloaded"
        # The dashboards see the frames as they are stored (a follower holds no worker, yet follows).
        first = next(iter(followers[0]))
        assert first.classroom_id == "room-1"
        summary = apb_grpc.AggregatorStub(agg).GetSummary(
            apb.SummaryRequest(classroom_id="room-1", window_seconds=600), metadata=token_metadata(ADMIN), timeout=5)
        assert summary.total_events >= 10 * len(loaded[0][1].faces)
        assert health_seconds(fd) < 1.0 and health_seconds(agg) < 1.0
    finally:
        release.set()
        for call in calls + followers:
            call.cancel()
        for channel in (fd, agg, *attackers):
            channel.close()


def test_one_caller_cannot_open_more_than_its_share(tmp_path) -> None:
    """Open calls cost no thread, yet are not free: past max_calls_per_peer open calls on open methods
    from one address (max_calls_per_credential for one token on guarded ones), more are refused
    RESOURCE_EXHAUSTED, and health still answers."""
    config = AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), max_calls_per_peer=8,
                              auth_token=ADMIN, max_calls_per_credential=4)
    server = build_aggregator(config).start()
    release = threading.Event()

    def never():
        release.wait(60)
        return
        yield  # pragma: no cover

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            open_calls = [channel.stream_stream(REFLECTION)(never()) for _ in range(8)]
            followers = [apb_grpc.AggregatorStub(channel).StreamEvents(
                apb.StreamEventsRequest(classroom_id="room-1"), metadata=token_metadata(ADMIN), timeout=60)
                for _ in range(4)]
            time.sleep(1.0)
            with pytest.raises(grpc.RpcError) as err:
                next(iter(channel.stream_stream(REFLECTION)(never(), timeout=10)))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "address" in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                next(iter(apb_grpc.AggregatorStub(channel).StreamEvents(
                    apb.StreamEventsRequest(classroom_id="room-1"), metadata=token_metadata(ADMIN), timeout=10)))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "credential" in err.value.details()
            assert health_seconds(channel) < 1.0
            for call in open_calls + followers:
                call.cancel()
            time.sleep(0.5)
            # Closed calls give their slots back.
            assert apb_grpc.AggregatorStub(channel).GetSummary(
                apb.SummaryRequest(classroom_id="room-1", window_seconds=60), metadata=token_metadata(ADMIN),
                timeout=5).total_events == 0
    finally:
        release.set()
        server.stop(0)
