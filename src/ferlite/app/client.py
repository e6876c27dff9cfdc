"""The one camera client: what `ferlite stream`, the soak, the end-to-end, peer and recovery
benchmarks all use to send frames to face detection.

A `CameraSession` is one camera's run: its channel (message limits, round robin, TLS/mTLS and the
bearer token from `ChannelSecurity`), a session id drawn once (event ids are unique per run and a
retry reuses them), the tracks the service returned for the previous frame, and retries of a frame
with the same frame index (so its events are never counted twice). `Smoother` turns per-frame
probabilities into a steady label per track.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import grpc
import numpy as np

from ferlite.base.labels import EMOTIONS
from ferlite.services.common.channels import ChannelSecurity, open_channel
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def encode_jpeg(frame_bgr: np.ndarray, quality: int = 90) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode a frame of shape {frame_bgr.shape} as JPEG")
    return jpeg.tobytes()


def as_frame(frame: bytes | np.ndarray) -> pb.Frame:
    """JPEG bytes as they are, a BGR array encoded here."""
    return pb.Frame(encoded=frame if isinstance(frame, bytes) else encode_jpeg(frame))


class CameraSession:
    """One camera's run against face detection. `process` sends the next frame (index counted here)."""

    def __init__(self, target: str, classroom: str, stream_id: str, *, security: ChannelSecurity | None = None,
                 record: bool = True, timeout: float = 10.0, retries: int = 3, retry_for: float = 0.0,
                 session_id: str = "") -> None:
        self.channel = open_channel(target, security)
        self.stub = pb_grpc.FaceDetectionStub(self.channel)
        self.classroom, self.stream_id, self.record, self.timeout = classroom, stream_id, record, timeout
        self.retries, self.retry_for = retries, retry_for
        self.session_id = session_id or secrets.token_hex(8)  # one per run, reused by retries
        self.tracks: list[pb.Track] = []
        self.index = 0
        self.retried = 0

    def process(self, frame: bytes | np.ndarray, timestamp: float | None = None) -> pb.ProcessResponse:
        """Send one frame (JPEG bytes, or a BGR array encoded here) with the tracks of the last answer;
        retry it on UNAVAILABLE/DEADLINE_EXCEEDED with the same index (`retries` times, or for
        `retry_for` seconds when that is set). The index advances whether or not it succeeds."""
        request = pb.ProcessRequest(frame=as_frame(frame), classroom_id=self.classroom,
                                    stream_id=self.stream_id, frame_index=self.index,
                                    timestamp=time.time() if timestamp is None else timestamp,
                                    previous_tracks=self.tracks, record=self.record, session_id=self.session_id)
        self.index += 1
        reply = self._call(self.stub.Process, request)
        self.tracks = [pb.Track(track_id=f.track_id, box=f.box) for f in reply.faces]
        return reply

    def detect(self, frame: bytes | np.ndarray) -> pb.DetectResponse:
        """Detection only (no classification, nothing recorded)."""
        return self._call(self.stub.Detect, pb.DetectRequest(frame=as_frame(frame)))

    def _call(self, method, request):
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                more = (time.monotonic() - started < self.retry_for) if self.retry_for else attempt < self.retries
                if exc.code() not in RETRYABLE or not more:
                    raise
                self.retried += 1
                time.sleep(min(2.0, 0.2 * 2**attempt))
                attempt += 1

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> CameraSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TrackState:
    probabilities: np.ndarray
    uncertain: float = 0.0   # moving average of the service's per-face "uncertain" flag


class Smoother:
    """Per-track exponential moving average of class probabilities."""

    def __init__(self, alpha: float = 0.6, uncertain_below: float = 0.0) -> None:
        self.alpha, self.uncertain_below = alpha, uncertain_below
        self.tracks: dict[str, TrackState] = {}

    def update(self, track_id: str, probabilities: Sequence[float], uncertain: bool = False) -> tuple[str, float]:
        """The track's smoothed label. Uncertain when most recent faces were (the service applies the
        served model's own validated threshold), or below `uncertain_below` if that is set."""
        p = np.asarray(probabilities, dtype=np.float64)
        state = self.tracks.get(track_id)
        if state is None:
            state = self.tracks[track_id] = TrackState(p, float(uncertain))
        else:
            state.probabilities = self.alpha * state.probabilities + (1 - self.alpha) * p
            state.uncertain = self.alpha * state.uncertain + (1 - self.alpha) * float(uncertain)
        k = int(state.probabilities.argmax())
        confidence = float(state.probabilities[k])
        doubtful = confidence < self.uncertain_below if self.uncertain_below > 0 else state.uncertain > 0.5
        return ("uncertain" if doubtful else EMOTIONS[k]), confidence
