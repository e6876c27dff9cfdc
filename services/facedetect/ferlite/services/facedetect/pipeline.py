"""The face-detection core and the per-frame pipeline, free of gRPC.

`FaceService.detect` finds faces and prepares their crops with the shared preprocessing module.
`FaceService.process` is the camera client's one call per frame: detect, classify the crops
(through a `Classify` callable, the classifier service in production), keep track ids stable,
mark low-confidence faces uncertain, and record events (no pixels) through a `Record` callable.
Crops exist only in memory here and in the classifier request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ferlite.base import preprocess
from ferlite.base.events import Event
from ferlite.base.labels import EMOTIONS
from ferlite.services.common.metrics import ServiceMetrics

from .config import FaceDetectConfig
from .detectors import Detector, Face
from .tracking import Track, assign, event_id

FACE_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34)


@dataclass(frozen=True)
class ClassifierAnswer:
    probabilities: np.ndarray   # N x 7
    architecture: str
    model_version: str
    uncertain: np.ndarray | None = None   # N booleans: below the model's own threshold


Classify = Callable[[np.ndarray, str, float], ClassifierAnswer]   # crops, routing key, timeout
Record = Callable[[list[Event], float], bool]                       # events, timeout -> stored or spooled


@dataclass(frozen=True)
class Detection:
    face: Face
    crop: np.ndarray | None   # float32 S x S x 3 in [0, 1]


@dataclass(frozen=True)
class LabelledFace:
    face: Face
    track_id: str
    event_id: str
    probabilities: np.ndarray
    label: str
    confidence: float
    uncertain: bool


@dataclass(frozen=True)
class ProcessResult:
    faces: list[LabelledFace]
    architecture: str
    model_version: str
    recorded: bool
    detect_ms: float
    classify_ms: float
    record_ms: float


@dataclass(frozen=True)
class FrameInfo:
    classroom_id: str
    stream_id: str
    frame_index: int
    timestamp: float
    previous_tracks: list[Track]
    record: bool
    session_id: str = ""


class FaceService:
    def __init__(self, config: FaceDetectConfig, detector: Detector, metrics: ServiceMetrics) -> None:
        self.config = config
        self.detector = detector
        self.h_detect = metrics.histogram("detect_duration_seconds", "Face-detection time per frame.", ["detector"])
        self.h_faces = metrics.histogram("faces_per_frame", "Faces found per frame.", buckets=FACE_BUCKETS)
        self.c_rejected = metrics.counter("frames_rejected_total", "Frames refused, by reason.", ["reason"])
        self.h_stage = metrics.histogram("pipeline_stage_duration_seconds", "Process time per stage.", ["stage"])
        self.c_uncertain = metrics.counter("faces_total", "Classified faces, by certainty.", ["certainty"])

    def reject(self, reason: str) -> None:
        self.c_rejected.labels(reason).inc()

    def detect(self, rgb: np.ndarray, crop_size: int = 0, include_crops: bool = True) -> tuple[list[Detection], float]:
        start = time.perf_counter()
        faces = self.detector.detect(rgb)
        seconds = time.perf_counter() - start
        self.h_detect.labels(self.detector.name).observe(seconds)
        self.h_faces.observe(len(faces))
        size = crop_size or self.config.crop_size
        detections = []
        for face in faces:
            # uint8 pixels: a quarter of float32's bytes on the wire; the classifier normalises
            detections.append(Detection(face, self.crop(rgb, face, size) if include_crops else None))
        return detections, seconds * 1000.0

    def crop(self, rgb: np.ndarray, face: Face, size: int) -> np.ndarray:
        """The face's aligned square crop at `size` px (uint8 RGB), by the shared preprocessing."""
        return preprocess.face_pixels(rgb, size, preprocess.Box(*face.box), self.config.crop_margin, face.eyes)

    def process(self, rgb: np.ndarray, info: FrameInfo, classify: Classify, record: Record,
                deadline: float | None = None) -> ProcessResult:
        def budget() -> float:
            left = self.config.downstream_timeout if deadline is None else deadline - time.monotonic()
            return max(0.05, min(left, self.config.downstream_timeout))

        detections, detect_ms = self.detect(rgb)
        self.h_stage.labels("detect").observe(detect_ms / 1000.0)
        if not detections:
            return ProcessResult([], "", "", False, detect_ms, 0.0, 0.0)
        start = time.perf_counter()
        answer = classify(np.stack([d.crop for d in detections]), info.stream_id, budget())
        classify_ms = (time.perf_counter() - start) * 1000.0
        self.h_stage.labels("classify").observe(classify_ms / 1000.0)
        tracks = assign([d.face.box for d in detections], info.previous_tracks, info.stream_id, info.frame_index,
                        self.config.track_iou)
        faces = []
        model_says = answer.uncertain if answer.uncertain is not None else np.zeros(len(detections), bool)
        for det, track, probs, flagged in zip(detections, tracks, answer.probabilities, model_says, strict=True):
            k = int(np.argmax(probs))
            # The model's validated threshold, unless the service sets one of its own.
            below = self.config.uncertain_below
            uncertain = float(probs[k]) < below if below > 0 else bool(flagged)
            self.c_uncertain.labels("uncertain" if uncertain else "certain").inc()
            faces.append(LabelledFace(det.face, track, event_id(info.classroom_id, info.stream_id, info.session_id,
                                                                info.frame_index, track),
                                      probs, EMOTIONS[k], float(probs[k]), uncertain))
        recorded, record_ms = False, 0.0
        if info.record:
            timestamp = info.timestamp or time.time()
            events = [Event(f.event_id, info.classroom_id, info.stream_id, f.track_id, timestamp,
                            tuple(float(v) for v in f.face.box), tuple(float(p) for p in f.probabilities),
                            f.label, f.confidence, f.uncertain, answer.architecture, answer.model_version)
                      for f in faces]
            start = time.perf_counter()
            recorded = record(events, budget())
            record_ms = (time.perf_counter() - start) * 1000.0
            self.h_stage.labels("record").observe(record_ms / 1000.0)
        return ProcessResult(faces, answer.architecture, answer.model_version, recorded, detect_ms, classify_ms,
                             record_ms)
