"""Smooth face-sized images for model tests: blocky blobs, not the uniform noise that excites every
filter at once, and no real faces (the suite never reads ../shared)."""

from __future__ import annotations

import numpy as np


def blobs(size: int, n: int, seed: int) -> np.ndarray:
    """`n` RGB images of `size` px in [0, 1]: a 6x6 random grey grid scaled up, grey on three channels."""
    small = np.random.default_rng(seed).random((n, 6, 6, 1), dtype=np.float32)
    big = np.repeat(np.repeat(small, size // 6 + 1, axis=1), size // 6 + 1, axis=2)[:, :size, :size]
    return np.repeat(big, 3, axis=3).astype(np.float32)
