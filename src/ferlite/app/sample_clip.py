"""A sample classroom clip made from real face images that scikit-image ships (no download).

Scene 1 pans slowly over NASA's astronaut portrait (one face); scene 2 is a "classroom" of six
faces from scikit-image's LFW subset, enlarged and jittered so they move a little between frames
(tracking has something to do). Written as MP4 (mp4v) at 10 fps.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FPS = 10
WIDTH, HEIGHT = 640, 480
TILE = 170  # faces this large are found by BlazeFace's 192-px full-range model


def _astronaut_frames(n: int) -> list[np.ndarray]:
    from skimage import data

    portrait = cv2.resize(data.astronaut(), (400, 400), interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        canvas = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
        x = 40 + int(120 * i / max(1, n - 1))
        canvas[40:440, x:x + 400] = portrait
        frames.append(canvas)
    return frames


def _classroom_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    from skimage import data

    faces = data.lfw_subset()[[0, 7, 14, 21, 28, 35]]
    rng = np.random.default_rng(seed)
    tiles = [cv2.cvtColor(cv2.resize((f * 255).astype(np.uint8), (TILE, TILE), interpolation=cv2.INTER_CUBIC),
                          cv2.COLOR_GRAY2RGB) for f in faces]
    frames = []
    for _ in range(n):
        canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        for k, tile in enumerate(tiles):
            row, col = divmod(k, 3)
            x = 21 + col * 213 + int(rng.integers(-3, 4))
            y = 35 + row * 240 + int(rng.integers(-3, 4))
            canvas[y:y + TILE, x:x + TILE] = tile
        frames.append(canvas)
    return frames


def make_clip(path: str | Path, seconds: float = 4.0, scenes: str = "portrait,classroom") -> Path:
    """Write the sample clip (by default half portrait, half classroom) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(2, int(seconds * FPS))
    makers = {"portrait": _astronaut_frames, "classroom": _classroom_frames}
    names = scenes.split(",")
    frames = [f for i, name in enumerate(names)
              for f in makers[name](n // len(names) + (n % len(names) if i == len(names) - 1 else 0))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def sample_jpegs() -> list[bytes]:
    """Ten astronaut and ten classroom frames as JPEG: the frames the load and benchmark clients send."""
    images = _astronaut_frames(10) + _classroom_frames(10)
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes() for f in images]
