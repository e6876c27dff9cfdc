"""Training-only augmentation of the paper (rotation, horizontal flip, zoom, brightness), plus an
optional shift (translation; the pack's GPU recipe uses it: FER2013 faces are not centred alike) and
an optional cutout (random erasing, Zhong et al. 2017: a rectangle of noise over part of the face, so
the model cannot lean on one region such as the mouth; off by default).

Two implementations of the same transforms, never used at evaluation or serving time:
  augmenter       Keras layers on [0, 1] float batches after the shared preprocessing, inside the
                  training graph (the CPU path).
  augment_batch   OpenCV on the host, on the 48x48 faces before they enter the graph. On a GPU the
                  Keras layers inside XLA's compiled train step never finished compiling (see
                  benchmarks/train_pack.py); the host version keeps only the model in the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import keras
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    rotation_degrees: float = 15.0
    flip: bool = True
    zoom: float = 0.1          # ± fraction
    brightness: float = 0.2    # ± fraction of the [0, 1] range
    shift: float = 0.0         # ± fraction of the width and height (translation); off by default
    cutout: float = 0.0        # probability a face gets one noise rectangle; off by default
    cutout_area: tuple[float, float] = (0.02, 0.2)  # the rectangle's share of the face

    def __post_init__(self) -> None:
        """Checked once, when the config is made, not on every batch of the host path."""
        if not 0.0 <= self.cutout <= 1.0:
            raise ValueError(f"cutout is a probability in [0, 1], not {self.cutout}")
        low, high = self.cutout_area
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"cutout_area must be 0 < low <= high <= 1, not {self.cutout_area}")


def augmenter(config: AugmentConfig = AugmentConfig(), seed: int | None = None) -> keras.Sequential:
    layers: list[keras.layers.Layer] = []
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation_degrees:
        layers.append(keras.layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="nearest",
                                                  seed=seed))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="nearest", seed=seed))
    if config.shift:
        layers.append(keras.layers.RandomTranslation(config.shift, config.shift, fill_mode="nearest",
                                                     seed=seed))
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0.0, 1.0), seed=seed))
    if config.cutout:  # Keras draws each side's squared share from `scale` (so the area's lies there too); noise fill
        layers.append(keras.layers.RandomErasing((config.cutout, config.cutout), scale=config.cutout_area,
                                                 value_range=(0.0, 1.0), seed=seed))
    return keras.Sequential(layers, name="augment")


def augment_batch(faces: np.ndarray, rng: np.random.Generator,
                  config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """The same transforms on the host: each face (N, H, W) or (N, H, W, 1), values in [0, 255],
    gets a random mirror, rotation within ±rotation_degrees and zoom within ±zoom about its centre
    and a shift within ±shift of its size (edges repeated, as the layers' fill_mode="nearest"), then
    a brightness shift within ±brightness of the value range, clipped; then, with probability `cutout`,
    one rectangle (a `cutout_area` share of the face, aspect 0.3 to 3.3, anywhere inside it) of uniform
    noise over [0, 255]. Returns float32 of the input's shape. With cutout off it draws nothing more,
    so earlier runs (and resumed ones) see the same batches."""
    x = np.asarray(faces, dtype=np.float32)
    squeeze = x.ndim == 4
    if squeeze:
        x = x[..., 0]
    n, h, w = x.shape
    out = np.empty_like(x)
    flips = rng.random(n) < 0.5 if config.flip else np.zeros(n, bool)
    angles = rng.uniform(-config.rotation_degrees, config.rotation_degrees, n)
    zooms = 1.0 + rng.uniform(-config.zoom, config.zoom, n)
    shifts = rng.uniform(-config.brightness, config.brightness, n) * 255.0
    moves = rng.uniform(-config.shift, config.shift, (n, 2)) * (w, h) if config.shift else np.zeros((n, 2))
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    for i in range(n):
        face = x[i, :, ::-1] if flips[i] else x[i]
        if config.rotation_degrees or config.zoom or config.shift:
            matrix = cv2.getRotationMatrix2D(centre, float(angles[i]), float(zooms[i]))
            matrix[:, 2] += moves[i]
            face = cv2.warpAffine(np.ascontiguousarray(face), matrix, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        out[i] = face
    if config.brightness:
        out += shifts[:, None, None].astype(np.float32)
    np.clip(out, 0.0, 255.0, out=out)
    if config.cutout:
        _cutout(out, rng, config)
    return out[..., None] if squeeze else out


def _cutout(out: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> None:
    """Random erasing in place on (N, H, W) faces in [0, 255]."""
    n, h, w = out.shape
    chosen = rng.random(n) < config.cutout
    areas = rng.uniform(*config.cutout_area, n) * h * w
    aspects = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3), n))
    heights = np.clip(np.round(np.sqrt(areas * aspects)), 1, h).astype(int)
    widths = np.clip(np.round(np.sqrt(areas / aspects)), 1, w).astype(int)
    tops, lefts = rng.random(n), rng.random(n)
    for i in np.flatnonzero(chosen):
        top, left = int(tops[i] * (h - heights[i] + 1)), int(lefts[i] * (w - widths[i] + 1))
        out[i, top:top + heights[i], left:left + widths[i]] = rng.uniform(0.0, 255.0, (heights[i], widths[i]))
