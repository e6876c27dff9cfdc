"""The demo's sample clip: the group-photo scene, and its offline fallback (no network here: a
stand-in photo is put where the cache keeps the real one)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferlite.app import sample_clip
from ferlite.app.photos import PhotoUnavailable
from ferlite.app.sample_clip import HEIGHT, WIDTH, choose_scenes, make_clip


def stand_in_photo(cache) -> np.ndarray:
    """A 1280x886 BGR image where the cache keeps the group photo, so nothing is fetched."""
    photo = np.random.default_rng(0).integers(0, 256, (886, 1280, 3), dtype=np.uint8)
    cache.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(cache / "group_t1.jpg"), photo)
    return photo


def test_group_frames_fit_the_frame_and_zoom_in(tmp_path) -> None:
    frames = sample_clip._group_frames(5, stand_in_photo(tmp_path))
    assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
    assert (frames[0][:10] == 128).all()  # fitted to the width: grey bands above and below
    assert not (frames[-1][:10] == 128).all()  # zoomed in: the photo fills the frame's height
    assert not np.array_equal(frames[0], frames[1])


def test_the_clip_has_the_group_scene_when_its_photo_is_cached(tmp_path) -> None:
    stand_in_photo(tmp_path / "photos")
    assert choose_scenes("portrait,group", tmp_path / "photos") == ("portrait,group", "")
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0, scenes="portrait,group", cache=tmp_path / "photos")
    video = cv2.VideoCapture(str(clip))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 10
    video.release()


def test_without_the_group_photo_the_clip_falls_back_to_the_lfw_classroom(tmp_path, monkeypatch) -> None:
    def unreachable(cache, timeout=120.0):
        raise PhotoUnavailable("no package registry")

    monkeypatch.setattr(sample_clip, "group_photo", unreachable)
    scenes, note = choose_scenes("portrait,group", tmp_path)
    assert scenes == "portrait,classroom" and "no package registry" in note
    assert choose_scenes("portrait,group", None)[0] == "portrait,classroom"
    with pytest.raises(PhotoUnavailable):
        make_clip(tmp_path / "clip.mp4", scenes="group", cache=tmp_path)
    with pytest.raises(ValueError, match="unknown scene"):
        make_clip(tmp_path / "clip.mp4", scenes="portrait,beach")
