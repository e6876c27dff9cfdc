"""THE preprocessing of a face, shared by training and the face-detection service.

Training images and live camera crops go through exactly these functions, so the model sees the
same tensors in both places (no train/serve skew; `tests/test_preprocess.py` proves it):

    RGB uint8 image ─▶ crop the face (square, with margin) ─▶ resize to size×size
                    ─▶ float32 in [0, 1]   (the paper's normalisation)

What each backbone expects beyond [0, 1] is done INSIDE the model (see `models.py`), so every
exported model takes [0, 1] RGB and no caller needs to know the architecture:
MobileNetV2 maps to [-1, 1]; MobileNetV3 and EfficientNetB0 rescale to [0, 255] and apply their
own built-in preprocessing layers.

Augmentation (rotation, flip, zoom, brightness) is for training only and lives in `augment.py`.
This module needs only NumPy and OpenCV: no TensorFlow on serving nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_SIZE = 32
DEFAULT_SIZE = 224
# Extra context around a detector's box, as a fraction of the box side: detectors box the inner
# face tightly, while FER-style training crops include forehead and chin.
DEFAULT_MARGIN = 0.2


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the source image."""

    x: float
    y: float
    width: float
    height: float


def check_size(size: int) -> int:
    if not isinstance(size, int) or size < MIN_SIZE:
        raise ValueError(f"image size must be an integer >= {MIN_SIZE}, got {size!r}")
    return size


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Greyscale (H×W or H×W×1) or RGBA becomes 3-channel RGB uint8; RGB passes through."""
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(f"unsupported image shape {image.shape}")


def square_crop(image: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A square crop centred on `box`, grown by `margin`; edges outside the image are replicated.

    Inside the image this is a view; across an edge only the crop's own window is padded (not the
    whole frame: a face at a frame's edge once cost a copy of the frame)."""
    side = max(box.width, box.height) * (1.0 + 2.0 * margin)
    cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = max(1, round(side))
    h, w = image.shape[:2]
    top, bottom, left, right = max(0, -y0), max(0, y0 + s - h), max(0, -x0), max(0, x0 + s - w)
    if not (top or bottom or left or right):
        return image[y0:y0 + s, x0:x0 + s]
    if max(top, bottom, left, right) < s:  # the window overlaps the image: replicate its edges
        inside = image[y0 + top:y0 + s - bottom, x0 + left:x0 + s - right]
        return cv2.copyMakeBorder(inside, top, bottom, left, right, borderType=cv2.BORDER_REPLICATE)
    # Wholly outside: each pixel is the nearest edge pixel (a translation with replicated borders).
    shift = np.float64([[1, 0, -x0], [0, 1, -y0]])
    return cv2.warpAffine(image, shift, (s, s), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


Point = tuple[float, float]


def aligned_square_crop(image: np.ndarray, box: Box, margin: float = DEFAULT_MARGIN,
                        eyes: tuple[Point, Point] | None = None) -> np.ndarray:
    """Like `square_crop`, but rotated about the face centre so the eyes are level.

    `eyes` are the image-left and image-right eye centres (BlazeFace gives them). One affine warp
    of the frame straight into the side x side crop (bilinear, borders replicated): the rotation
    about the centre of a square sqrt(2) larger than the crop, then the crop's offset in it. The
    same pixels as cutting that larger square, rotating it and taking its centre, at about half
    the time (no intermediate square, no padded copy of the frame at an edge). Without eyes, or
    for a tilt under one degree, this is `square_crop`.
    """
    if eyes is None:
        return square_crop(image, box, margin)
    (lx, ly), (rx, ry) = eyes
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    if abs(angle) < 1.0 or abs(angle) > 60.0:  # level already, or landmarks not to be trusted
        return square_crop(image, box, margin)
    side = max(1, round(max(box.width, box.height) * (1.0 + 2.0 * margin)))
    big = math.ceil(side * math.sqrt(2)) + 2
    cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    corner = np.float64([round(cx - big / 2.0), round(cy - big / 2.0)])  # the larger square's, in the frame
    rotation = cv2.getRotationMatrix2D((big / 2.0, big / 2.0), angle, 1.0)
    matrix = rotation.copy()
    matrix[:, 2] = rotation[:, 2] - rotation[:, :2] @ corner - (big - side) // 2
    return cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


# The colour a model learnt from (ModelMetadata.colour): "rgb" as the camera sees it, or "grey"
# (FER2013's faces are greyscale; training replicates them on three channels).
COLOURS = ("rgb", "grey")


def is_grey(pixels: np.ndarray) -> bool:
    """True when every pixel of an (N x) H x W x 3 array has equal channels: grey faces in RGB form."""
    return bool(np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 1], pixels[..., 2]))


def colour_of(pixels: np.ndarray) -> str:
    """The colour a model trained on these faces learns from: "grey" when every pixel is grey."""
    return "grey" if is_grey(pixels) else "rgb"


def match_colour(batch: np.ndarray, colour: str) -> np.ndarray:
    """N x H x W x 3 RGB crops in the colour their model learnt from. "rgb" passes them through;
    "grey" puts each pixel's luma (ITU-R BT.601, OpenCV's RGB2GRAY: the usual greyscale of face
    datasets) on all three channels, as training replicated the grey faces. uint8 or float32."""
    if colour == "rgb":
        return batch
    if colour != "grey":
        raise ValueError(f"colour must be one of {COLOURS}, got {colour!r}")
    n, h, w = batch.shape[:3]
    flat = np.ascontiguousarray(batch).reshape(n * h, w, 3)  # one tall image: one OpenCV call
    return cv2.cvtColor(cv2.cvtColor(flat, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB).reshape(batch.shape)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size×size: area averaging when shrinking (no aliasing), bilinear when growing."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def face_pixels(image: np.ndarray, size: int = DEFAULT_SIZE, box: Box | None = None,
                margin: float = DEFAULT_MARGIN, eyes: tuple[Point, Point] | None = None) -> np.ndarray:
    """RGB uint8 size×size×3 face: cropped (and eye-aligned) around `box` if given; pre-cropped
    images pass through."""
    check_size(size)
    rgb = to_rgb(image)
    if box is not None:
        rgb = aligned_square_crop(rgb, box, margin, eyes)
    return np.ascontiguousarray(resize(rgb, size))


def mirrored(batch: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Each image of an N x H x W x C batch flipped left-right (test-time flip averaging).

    OpenCV flips the batch as one tall image, row by row: the same values as `batch[:, :, ::-1]`
    at ~50x the speed of NumPy's reversed-stride copy (8 crops of 128 px: 0.43 -> 0.01 ms).
    `out`: a C-contiguous array of the batch's shape and type to write into instead of a new one."""
    n, h, w = batch.shape[:3]
    flat = np.ascontiguousarray(batch).reshape(n * h, w, -1)
    if out is None:
        return cv2.flip(flat, 1).reshape(batch.shape)
    if out.shape != batch.shape or out.dtype != batch.dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {batch.dtype} array of shape {batch.shape}")
    cv2.flip(flat, 1, dst=out.reshape(n * h, w, -1))
    return out


def normalize(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 [0, 255] → float32 [0, 1], the paper's normalisation (exactly x / 255).
    `out`: a float32 array of the same shape to write into instead of a new one."""
    if out is None:
        return pixels.astype(np.float32) / np.float32(255.0)
    return np.divide(pixels, np.float32(255.0), out=out)


def prepare_face(image: np.ndarray, size: int = DEFAULT_SIZE, box: Box | None = None,
                 margin: float = DEFAULT_MARGIN, eyes: tuple[Point, Point] | None = None) -> np.ndarray:
    """The model input for one face: float32 size×size×3 in [0, 1]."""
    return normalize(face_pixels(image, size, box, margin, eyes))


def decode_image(data: bytes) -> np.ndarray:
    """Decode JPEG/PNG/WebP/BMP bytes to RGB uint8; raise ValueError if they are not an image."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ValueError("empty image data")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("bytes are not a decodable image (JPEG, PNG, WebP or BMP)")
    if image.dtype != np.uint8:  # 16-bit PNGs
        image = (image / 257).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return to_rgb(image)


_HAAR: cv2.CascadeClassifier | None = None


def largest_face(image: np.ndarray, min_size: int = 24) -> Box | None:
    """The largest frontal face that OpenCV's Haar cascade finds, or None.

    Training uses it to crop uncropped datasets (`ferlite train --crop-faces`); images with no
    detection pass through whole, which is right for datasets that are already face crops.
    """
    global _HAAR
    if _HAAR is None:
        _HAAR = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    grey = cv2.cvtColor(to_rgb(image), cv2.COLOR_RGB2GRAY)
    found = _HAAR.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    if len(found) == 0:
        return None
    x, y, w, h = max(found, key=lambda r: r[2] * r[3])
    return Box(float(x), float(y), float(w), float(h))
