"""Training-only augmentation of the paper: rotation, horizontal flip, zoom, brightness.

Applied to [0, 1] float batches after the shared preprocessing, inside the tf.data pipeline, and
never at evaluation or serving time.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras


@dataclass(frozen=True)
class AugmentConfig:
    rotation_degrees: float = 15.0
    flip: bool = True
    zoom: float = 0.1          # ± fraction
    brightness: float = 0.2    # ± fraction of the [0, 1] range


def augmenter(config: AugmentConfig = AugmentConfig(), seed: int | None = None) -> keras.Sequential:
    layers: list[keras.layers.Layer] = []
    if config.flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if config.rotation_degrees:
        layers.append(keras.layers.RandomRotation(config.rotation_degrees / 360.0, fill_mode="nearest",
                                                  seed=seed))
    if config.zoom:
        layers.append(keras.layers.RandomZoom(config.zoom, fill_mode="nearest", seed=seed))
    if config.brightness:
        layers.append(keras.layers.RandomBrightness(config.brightness, value_range=(0.0, 1.0), seed=seed))
    return keras.Sequential(layers, name="augment")
