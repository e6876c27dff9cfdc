"""The one camera client: what `ferlite stream`, the soak, the end-to-end, peer and recovery
benchmarks all use to send frames to face detection (one call per frame, or `CameraStream` for
recording off the frame's path).

A `CameraSession` is one camera's run: its channel (message limits, round robin, TLS/mTLS and the
bearer token from `ChannelSecurity`), a session id drawn once (event ids are unique per run and a
retry reuses them), the tracks the service returned for the previous frame, and retries of a frame
with the same frame index (so its events are never counted twice). `Smoother` turns per-frame
probabilities into a steady label per track.
"""

from __future__ import annotations

import queue
import secrets
import threading
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
        reply = self._call(self.stub.Process, self.next_request(frame, timestamp))
        self.follow(reply)
        return reply

    def next_request(self, frame: bytes | np.ndarray, timestamp: float | None = None) -> pb.ProcessRequest:
        """The next frame's request (its index, this session, the last answer's tracks); the index advances."""
        request = pb.ProcessRequest(frame=as_frame(frame), classroom_id=self.classroom,
                                    stream_id=self.stream_id, frame_index=self.index,
                                    timestamp=time.time() if timestamp is None else timestamp,
                                    previous_tracks=self.tracks, record=self.record, session_id=self.session_id)
        self.index += 1
        return request

    def follow(self, reply: pb.ProcessResponse) -> None:
        """Keep the tracks of a frame's answer for the next frame's request."""
        self.tracks = [pb.Track(track_id=f.track_id, box=f.box) for f in reply.faces]

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


class CameraStream:
    """One camera's frames on one ProcessStream: recording off the frame's path.

    `process` sends a frame and returns its result as soon as its faces are classified; the
    service's acknowledgements arrive on their own and move frames from `pending` to `stored` (a
    failed one stays pending and is named in `failed`). A pending frame's request is kept, so after
    a broken stream (a replica went away) `reopen` sends every pending frame again, with its own
    index, session and tracks: event ids are deterministic, so a frame recorded twice is stored
    once. `close` ends the stream and waits for the last acknowledgements.
    """

    def __init__(self, session: CameraSession) -> None:
        self.session = session
        self.pending: dict[int, pb.ProcessRequest] = {}
        self.stored: set[int] = set()
        self.failed: set[int] = set()
        self._acks = threading.Condition()
        self._open()

    def _open(self) -> None:
        self._requests: queue.Queue[pb.ProcessRequest | None] = queue.Queue()
        self._results: queue.Queue[pb.ProcessUpdate | grpc.RpcError | None] = queue.Queue()
        # wait_for_ready: a stream opened while the service restarts waits for it instead of failing
        self._call = self.session.stub.ProcessStream(iter(self._requests.get, None), wait_for_ready=True)
        self._reader = threading.Thread(target=self._read, args=(self._call, self._results), daemon=True)
        self._reader.start()

    def _read(self, call, results: queue.Queue) -> None:
        try:
            for update in call:
                if update.WhichOneof("update") == "ack":
                    with self._acks:
                        for index in update.ack.stored:
                            self.pending.pop(index, None)
                            self.stored.add(index)
                            self.failed.discard(index)
                        self.failed.update(update.ack.failed)
                        self._acks.notify_all()
                else:
                    results.put(update)
        except grpc.RpcError as exc:
            results.put(exc)
        else:
            results.put(None)
        finally:
            with self._acks:
                self._acks.notify_all()

    def process(self, frame: bytes | np.ndarray, timestamp: float | None = None) -> pb.ProcessResponse:
        """Send one frame; return its result (labels now; `recorded` false until acknowledged)."""
        request = self.session.next_request(frame, timestamp)
        if request.record:
            with self._acks:
                self.pending[request.frame_index] = request
        self._requests.put(request)
        reply = self._result(request.frame_index)
        self.session.follow(reply)
        return reply

    def _result(self, frame_index: int) -> pb.ProcessResponse:
        while True:
            try:
                update = self._results.get(timeout=self.session.timeout)
            except queue.Empty:
                raise TimeoutError(f"no result for frame {frame_index} in {self.session.timeout} s") from None
            if isinstance(update, grpc.RpcError):
                if update.code() not in RETRYABLE:  # the caller's fault, as CameraSession: never sent again
                    with self._acks:
                        self.pending.pop(frame_index, None)
                raise update
            if update is None:
                raise RuntimeError("the stream ended before the frame's result")
            if update.frame_index == frame_index:  # results of frames sent again are skipped
                return update.result

    def reopen(self) -> int:
        """A new stream (after the last one broke), with every pending frame sent again; their
        results are dropped, their acknowledgements count. Returns how many were sent again."""
        self._call.cancel()
        self._reader.join(self.session.timeout)
        self._open()
        with self._acks:
            again = [self.pending[i] for i in sorted(self.pending)]
            self.failed.clear()  # in flight again
        for request in again:
            self._requests.put(request)
        return len(again)

    def wait_acknowledged(self, timeout: float) -> bool:
        """True once no frame waits for its acknowledgement (failed frames still wait: send them again)."""
        deadline = time.monotonic() + timeout
        with self._acks:
            while self.pending and self._reader.is_alive():
                left = deadline - time.monotonic()
                if left <= 0 or (self.failed and set(self.pending) <= self.failed):
                    break
                self._acks.wait(left)
            return not self.pending

    def close(self, timeout: float = 10.0) -> None:
        """End the stream: the service records what it answered and sends the last acknowledgements."""
        self._requests.put(None)
        self._reader.join(timeout)
        if self._reader.is_alive():
            self._call.cancel()


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
