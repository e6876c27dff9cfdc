"""The one camera client (`ferlite.app.client.CameraSession`) against a scripted face-detection
server: retries keep the frame index and session, tracks go back, the token travels on every call."""

from __future__ import annotations

from concurrent import futures

import grpc
import numpy as np
import pytest

from ferlite.app.client import CameraSession
from ferlite.services.common.channels import ChannelSecurity
from ferlite.services.common.security import bearer
from ferlite.v1 import common_pb2
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc


class Scripted(pb_grpc.FaceDetectionServicer):
    """Answers Process with one face per call; fails the calls whose number is in `fail` (1-based)."""

    def __init__(self, fail: set[int], code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE) -> None:
        self.fail, self.code, self.calls = fail, code, []

    def Process(self, request, context):
        self.calls.append((request.frame_index, request.session_id, [t.track_id for t in request.previous_tracks],
                           bearer(context.invocation_metadata())))
        if len(self.calls) in self.fail:
            context.abort(self.code, "scripted failure")
        face = pb.LabelledFace(track_id=f"t{request.frame_index}", box=common_pb2.BoundingBox(width=10, height=10))
        return pb.ProcessResponse(faces=[face], recorded=True)


@pytest.fixture
def server():
    def start(servicer: Scripted) -> str:
        s = grpc.server(futures.ThreadPoolExecutor(2))
        pb_grpc.add_FaceDetectionServicer_to_server(servicer, s)
        port = s.add_insecure_port("127.0.0.1:0")
        s.start()
        started.append(s)
        return f"127.0.0.1:{port}"

    started: list[grpc.Server] = []
    yield start
    for s in started:
        s.stop(0)


def test_a_retried_frame_keeps_its_index_and_session_and_tracks_follow(server) -> None:
    script = Scripted(fail={2, 3})
    frame = np.zeros((32, 32, 3), np.uint8)
    with CameraSession(server(script), "room", "cam", security=ChannelSecurity(token="tok"), retries=3) as camera:
        camera.process(frame)
        camera.process(frame)  # fails twice, answered on the third try
        camera.process(frame)
    indexes = [c[0] for c in script.calls]
    assert indexes == [0, 1, 1, 1, 2]
    assert len({c[1] for c in script.calls}) == 1 and script.calls[0][1]  # one session id for the run
    assert script.calls[1][2] == ["t0"] and script.calls[4][2] == ["t1"]  # the last answer's tracks go back
    assert {c[3] for c in script.calls} == {"tok"}  # the bearer token on every call
    assert camera.retried == 2


def test_gives_up_after_the_retries_and_never_retries_a_caller_error(server) -> None:
    script = Scripted(fail={1, 2, 3})
    with CameraSession(server(script), "room", "cam", retries=1) as camera, pytest.raises(grpc.RpcError):
        camera.process(b"jpeg")
    assert [c[0] for c in script.calls] == [0, 0]
    bad = Scripted(fail={1}, code=grpc.StatusCode.INVALID_ARGUMENT)
    with CameraSession(server(bad), "room", "cam", retries=5) as camera, pytest.raises(grpc.RpcError) as err:
        camera.process(b"jpeg")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(bad.calls) == 1


def test_a_refused_token_stops_the_stream_with_one_line(tmp_path) -> None:
    """Issue 30: with a token the service refuses, `ferlite stream` printed the refusal once per frame
    and went on. Now it stops at the first one, says what to pass, and exits 2."""
    import subprocess
    import sys

    import cv2
    import numpy as np

    from ferlite.services.facedetect.config import FaceDetectConfig
    from ferlite.services.facedetect.server import build
    from tests.support.procs import ROOT

    cameras = tmp_path / "camera-tokens"
    cameras.write_text("the-right-camera-token-000 room-1\n")
    server = build(FaceDetectConfig(port=0, metrics_port=-1, detector="haar", crop_size=48,
                                    classifier_url="127.0.0.1:9", aggregator_url="127.0.0.1:9",
                                    camera_tokens_file=str(cameras))).start()
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for _ in range(20):
        writer.write(np.zeros((64, 64, 3), np.uint8))
    writer.release()
    try:
        for token, code in (("a-wrong-token-0000000000", "UNAUTHENTICATED"),
                            ("the-right-camera-token-000", None)):
            result = subprocess.run(
                [sys.executable, "-m", "ferlite", "stream", "--source", str(clip), "--classroom", "room-2",
                 "--target", f"127.0.0.1:{server.port}", "--aggregator", "", "--token", token],
                capture_output=True, text=True, timeout=120, cwd=ROOT)
            assert result.returncode == 2, result.stderr[-2000:]
            errors = [line for line in result.stderr.splitlines() if "error" in line or "frame " in line]
            assert len(errors) == 1, errors  # one line, not one per frame
            assert "refused this client's token" in errors[0] and "--token-file" in errors[0]
            assert (code or "PERMISSION_DENIED") in errors[0]  # the right token, the wrong classroom
    finally:
        server.stop(0)
