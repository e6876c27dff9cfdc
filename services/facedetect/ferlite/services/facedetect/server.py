"""gRPC transport of face detection and the pipeline: protobuf <-> arrays, errors -> codes."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Sequence

import grpc
import numpy as np
from grpc import aio

from ferlite.base import preprocess
from ferlite.base.event_rules import NAME_RULE, TRACK_RULE, box_ok, is_name, is_track, shown, timestamp_problem
from ferlite.base.events import Event
from ferlite.services.common.calls import Aborted, SyncContext, in_worker, peer_host
from ferlite.services.common.channels import ChannelSecurity
from ferlite.services.common.config import ConfigError
from ferlite.services.common.credentials import ClassroomTokens, CredentialsError
from ferlite.services.common.metrics import ServiceMetrics
from ferlite.services.common.runner import run_service
from ferlite.services.common.security import RateLimiter, bearer, credential_key
from ferlite.services.common.server import GrpcServer, Mount
from ferlite.v1 import common_pb2
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc

from .clients import AggregatorClient, ClassifierClient, DownstreamError
from .config import FaceDetectConfig
from .detectors import DetectorUnavailable, Face, make_detector
from .frames import FrameError, RawFrame, decode_encoded, decode_raw
from .pipeline import Classify, FaceService, FrameInfo, Record
from .recorder import StreamRecorder
from .tracking import Track

SERVICE_NAME = "ferlite.v1.FaceDetection"
PIXEL_FORMATS = {pb.PIXEL_FORMAT_GRAY8: "gray8", pb.PIXEL_FORMAT_RGB8: "rgb8", pb.PIXEL_FORMAT_BGR8: "bgr8",
                 pb.PIXEL_FORMAT_RGBA8: "rgba8", pb.PIXEL_FORMAT_BGRA8: "bgra8"}


def _box(b: tuple[float, float, float, float]) -> common_pb2.BoundingBox:
    return common_pb2.BoundingBox(x=b[0], y=b[1], width=b[2], height=b[3])


def _points(face: Face) -> list[common_pb2.Point]:
    return [common_pb2.Point(x=x, y=y) for x, y in face.landmarks]


def client_key(context: grpc.ServicerContext, stream_id: str = "") -> str:
    """A rate-limit key: who is calling (the peer's address without its port, and its mTLS
    identity when it has one), plus the stream when given."""
    host = peer_host(context.peer() or "")
    identity = b",".join(context.auth_context().get("x509_common_name", [])).decode(errors="replace")
    return f"{host}|{identity}/{stream_id}"


class FaceDetectionServicer(pb_grpc.FaceDetectionServicer):
    def __init__(self, core: FaceService, classify: Classify, record: Record,
                 cameras: ClassroomTokens | None = None, admin_token: str = "") -> None:
        self.core = core
        self.classify = classify
        self.record = record
        self.cameras = cameras or ClassroomTokens()
        self.admin_token = admin_token
        credential_rate = core.config.max_fps_per_credential
        self.credential_limiter = RateLimiter(credential_rate, burst=max(2.0, 2 * credential_rate))
        rate = core.config.max_fps_per_client
        self.limiter = RateLimiter(rate, burst=max(2.0, 2 * rate))
        # All streams of one client together: rotating stream ids must not lift the limit.
        peer_rate = core.config.max_fps_per_peer
        self.peer_limiter = RateLimiter(peer_rate, burst=max(2.0, 2 * peer_rate))

    def _limit(self, context: grpc.ServicerContext, stream_id: str = "") -> None:
        if not self.limiter.allow(client_key(context, stream_id)):
            self.core.reject("rate_limited")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"more than {self.core.config.max_fps_per_client:g} frames/s from this client; slow down")
        if not self.peer_limiter.allow(client_key(context)):
            self.core.reject("rate_limited")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"more than {self.core.config.max_fps_per_peer:g} frames/s from this client over all its "
                          "streams; slow down")
        if self.cameras.tokens and not self.credential_limiter.allow(credential_key(context.invocation_metadata())):
            self.core.reject("rate_limited")
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"more than {self.core.config.max_fps_per_credential:g} frames/s with this camera token; "
                          "slow down")

    def _check_scope(self, context: grpc.ServicerContext, classroom: str) -> None:
        """A camera token sends frames for its own classrooms only (the admin token for any)."""
        if not self.cameras.permits(bearer(context.invocation_metadata()), classroom, self.admin_token):
            self.core.reject("classroom_denied")
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"this camera token may not send frames for classroom_id {shown(classroom)}")

    def _frame(self, frame: pb.Frame, context: grpc.ServicerContext) -> np.ndarray:
        limit = self.core.config.max_megapixels
        try:
            kind = frame.WhichOneof("payload")
            if kind == "encoded":
                return decode_encoded(frame.encoded, limit)
            if kind == "raw":
                r = frame.raw
                return decode_raw(RawFrame(r.width, r.height, PIXEL_FORMATS.get(r.format, ""), r.row_stride, r.data),
                                  limit)
            raise FrameError("empty", "frame is missing: set frame.encoded or frame.raw")
        except FrameError as exc:
            self.core.reject(exc.reason)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def Detect(self, request: pb.DetectRequest, context: grpc.ServicerContext) -> pb.DetectResponse:
        self._limit(context)
        if request.crop_size and not 32 <= request.crop_size <= MAX_DETECT_CROP:  # before decoding anything
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"crop_size {request.crop_size} must be 0 or 32..{MAX_DETECT_CROP}")
        rgb = self._frame(request.frame, context)
        detections, ms = self.core.detect(rgb, request.crop_size, include_crops=False)
        size = request.crop_size or self.core.config.crop_size
        answer = len(detections) * size * size * 3 * 4  # float32 crops
        if request.include_crops and answer > MAX_DETECT_CROP_BYTES:  # checked before any crop exists
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{len(detections)} crops of {size} px make {answer / 2**20:.1f} MiB, above the "
                          f"{MAX_DETECT_CROP_BYTES / 2**20:.1f} MiB an answer may carry: ask for a smaller crop_size "
                          "or include_crops=false")
        faces = []
        for d in detections:
            crop = None
            if request.include_crops:
                pixels = self.core.crop(rgb, d.face, size)
                crop = common_pb2.FaceCrop(height=size, width=size, channels=3, dtype=common_pb2.CROP_DTYPE_FLOAT32,
                                           data=preprocess.normalize(pixels).astype("<f4").tobytes())
            faces.append(pb.DetectedFace(box=_box(d.face.box), score=d.face.score, landmarks=_points(d.face),
                                         crop=crop))
        return pb.DetectResponse(faces=faces, frame_width=rgb.shape[1], frame_height=rgb.shape[0],
                                 detector=self.core.detector.name, detect_ms=ms)

    def Process(self, request: pb.ProcessRequest, context: grpc.ServicerContext) -> pb.ProcessResponse:
        return self._process(request, context, self.record)

    async def ProcessStream(self, requests: AsyncIterator[pb.ProcessRequest],
                            context: aio.ServicerContext) -> AsyncIterator[pb.ProcessUpdate]:
        """Frames in, results out as soon as classified; acks as the stream's recorder stores events.
        A frame task runs the frames (each in a worker thread) while this handler writes updates,
        so an ack can go out while the next frame is being processed. An open stream with no frame
        holds no thread; after stream_idle_seconds without one it is ended UNAVAILABLE (its frames
        already answered are still recorded and acknowledged; the client opens a new stream)."""
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[pb.ProcessUpdate | None] = asyncio.Queue()

        def ack(stored: list[int], failed: list[int]) -> None:  # from the recorder's thread
            loop.call_soon_threadsafe(updates.put_nowait, pb.ProcessUpdate(ack=pb.RecordAck(stored=stored,
                                                                                           failed=failed)))

        recorder = StreamRecorder(self.record, ack, self.core.config.downstream_timeout)
        failure: list[BaseException] = []
        idle_limit = self.core.config.stream_idle_seconds
        last_frame = [time.monotonic()]
        sync = SyncContext(context)

        async def run_frames() -> None:
            try:
                last = -1
                async for request in requests:
                    last_frame[0] = time.monotonic()
                    if request.frame_index <= last:  # a frame's events are keyed by its index
                        raise Aborted(grpc.StatusCode.INVALID_ARGUMENT,
                                      f"frame_index {request.frame_index} does not follow {last} on this stream: "
                                      "frames go in increasing order (send a repeated frame on a new stream)")
                    last = request.frame_index
                    events: list[Event] = []

                    def defer(evs: list[Event], _timeout: float, into: list[Event] = events) -> bool:
                        into.extend(evs)
                        return False  # not stored yet: the ack says when

                    result = await in_worker(self._process, request, sync, defer)
                    last_frame[0] = time.monotonic()
                    if request.record:  # first, so recording starts while the result is on its way
                        recorder.submit(request.frame_index, events)
                    updates.put_nowait(pb.ProcessUpdate(frame_index=request.frame_index, result=result))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                failure.append(exc)
            finally:
                # The frames already answered are still recorded and acknowledged (in a worker: it waits).
                await asyncio.shield(in_worker(recorder.close))
                updates.put_nowait(None)

        frames = asyncio.create_task(run_frames())
        try:
            while True:
                try:
                    update = await asyncio.wait_for(updates.get(), timeout=min(1.0, idle_limit / 2))
                except asyncio.TimeoutError:
                    if time.monotonic() - last_frame[0] > idle_limit:
                        self.core.reject("stream_idle")
                        await context.abort(grpc.StatusCode.UNAVAILABLE,
                                            f"no frame for {idle_limit:g} s: stream closed; open a new one to go on")
                    continue
                if update is None:
                    break
                yield update
        finally:
            frames.cancel()
        if failure:
            exc = failure[0]
            if isinstance(exc, Aborted):
                await context.abort(exc.code, exc.details)
            if not context.cancelled():  # (a client that hung up needs no status)
                self.core.reject("stream_error")
                await context.abort(grpc.StatusCode.INTERNAL, f"stream failed: {type(exc).__name__}")

    def _process(self, request: pb.ProcessRequest, context: grpc.ServicerContext, record: Record) -> pb.ProcessResponse:
        problems = []
        # The aggregator's rules, checked before any work: an event it would refuse is never made.
        for name in ("classroom_id", "stream_id"):
            value = getattr(request, name)
            if not value:
                problems.append(f"{name} is required")
            elif not is_name(value):
                problems.append(f"{name} {shown(value)} must be {NAME_RULE}")
        if request.record and not is_name(request.session_id):
            problems.append(f"session_id {shown(request.session_id)} must be {NAME_RULE}: draw one per run and reuse "
                            "it when retrying a frame (it makes event ids unique per run)")
        if request.record and request.timestamp:
            problem = timestamp_problem(request.timestamp, time.time())
            if problem:
                problems.append(f"timestamp {problem}")
        if request.frame_index < 0:
            problems.append("frame_index must be >= 0")
        if len(request.previous_tracks) > MAX_TRACKS:
            problems.append(f"previous_tracks has {len(request.previous_tracks)} tracks; at most {MAX_TRACKS} "
                            "(the faces of one frame)")
        else:
            problems += track_problems(request.previous_tracks)
        if problems:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(problems))
        self._check_scope(context, request.classroom_id)
        self._limit(context, request.stream_id)
        started = time.perf_counter()
        rgb = self._frame(request.frame, context)
        self.core.h_stage.labels("decode").observe(time.perf_counter() - started)
        info = FrameInfo(request.classroom_id, request.stream_id, request.frame_index, request.timestamp,
                         [Track(t.track_id, (t.box.x, t.box.y, t.box.width, t.box.height))
                          for t in request.previous_tracks], request.record, request.session_id)
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        try:
            result = self.core.process(rgb, info, self.classify, record, deadline)
        except DownstreamError as exc:
            # The caller's request was valid (it passed our checks): a downstream refusal of what
            # *we* sent is our fault, and must count (and alert) as one, not as the client's error.
            code = grpc.StatusCode.INTERNAL if exc.code in CALLER_CODES else exc.code
            context.abort(code, str(exc))
        return pb.ProcessResponse(
            faces=[pb.LabelledFace(box=_box(f.face.box), score=f.face.score, landmarks=_points(f.face),
                                   track_id=f.track_id, event_id=f.event_id, uncertain=f.uncertain,
                                   classification=common_pb2.Classification(
                                       probabilities=[float(p) for p in f.probabilities], label=f.label,
                                       confidence=f.confidence)) for f in result.faces],
            model=common_pb2.ModelRef(architecture=result.architecture, model_version=result.model_version),
            recorded=result.recorded, frame_width=rgb.shape[1], frame_height=rgb.shape[0],
            detect_ms=result.detect_ms, classify_ms=result.classify_ms, record_ms=result.record_ms)


# Codes that blame the caller; from a downstream service they mean face detection sent something wrong.
CALLER_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.FAILED_PRECONDITION,
                grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)

# A frame has at most max_faces faces (32 by default); far more previous tracks are an attack on the
# tracker's O(tracks x faces) matching, not a camera.
MAX_TRACKS = 256
# Detect's crops are float32: 256 px is above every model's input, and 3.5 MiB keeps an answer under
# gRPC's default 4 MiB message limit (1024-px crops of 4 faces once made a 50 MB answer).
MAX_DETECT_CROP = 256
MAX_DETECT_CROP_BYTES = 7 * 2**19


def track_problems(tracks) -> list[str]:
    """What is wrong with the previous tracks a client sent back (ids as face detection makes them,
    each once; boxes finite with a non-negative size): INVALID_ARGUMENT, before any work."""
    seen: set[str] = set()
    for i, t in enumerate(tracks):
        if not is_track(t.track_id):
            return [f"previous_tracks[{i}].track_id {shown(t.track_id)} must be {TRACK_RULE}"]
        if t.track_id in seen:
            return [f"previous_tracks[{i}].track_id {shown(t.track_id)} repeats: each track once"]
        seen.add(t.track_id)
        if not box_ok(t.box.x, t.box.y, t.box.width, t.box.height):
            return [f"previous_tracks[{i}].box must be finite with a non-negative width and height"]
    return []


def build(config: FaceDetectConfig) -> GrpcServer:
    try:
        detector = make_detector(config.detector, config.blazeface_model, config.score_threshold, config.nms_iou,
                                 config.min_face_px, config.max_faces)
    except DetectorUnavailable as exc:
        raise ConfigError(str(exc)) from exc
    config = dataclasses.replace(config, crop_size=config.resolved_crop_size())
    metrics = ServiceMetrics(config.SERVICE)
    core = FaceService(config, detector, metrics)
    security = ChannelSecurity(config.tls_ca, config.tls_client_cert, config.tls_client_key,
                               token=config.service_token_value)
    classifier = ClassifierClient(config.classifier_url, security)
    aggregator = AggregatorClient(config.aggregator_url, security)
    try:
        cameras = ClassroomTokens.load(config.camera_tokens_file)
    except CredentialsError as exc:
        raise ConfigError(str(exc)) from None
    servicer = FaceDetectionServicer(core, classifier, aggregator, cameras, config.token)
    return GrpcServer(config, [Mount(SERVICE_NAME, lambda s: pb_grpc.add_FaceDetectionServicer_to_server(servicer, s))],
                      metrics=metrics, on_stop=[classifier.close, aggregator.close],
                      scoped={f"/{SERVICE_NAME}/{m}": cameras.tokens for m in ("Process", "ProcessStream", "Detect")})


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(FaceDetectConfig, build, argv)


if __name__ == "__main__":
    sys.exit(main())
