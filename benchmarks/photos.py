"""The speed benchmarks' frames (e2e, peer): the real photographs of `ferlite.app.photos` (sources
and licences there), cached in benchmarks/results/tmp, re-encoded as JPEG (quality 90) at their
own size."""

from __future__ import annotations

from pathlib import Path

import cv2

from ferlite.app.photos import photos as _photos

TMP = Path(__file__).resolve().parent / "results" / "tmp"
# --frames of the speed benchmarks: what each set is, for their reports
FRAMES = {"photos": "real photographs (benchmarks/photos.py): a 1280x886 group of six at a table, twice, and two "
                     "portraits, 512 px",
          "sample": "the demo clip's 640x480 frames (the astronaut portrait and a six-face LFW classroom)"}


def photos():
    """name -> BGR image."""
    return _photos(TMP / "photos")


def photo_jpegs() -> list[bytes]:
    """The benchmark frames: the group photo twice (most frames of a classroom have many faces),
    each portrait once."""
    images = photos()
    order = ["group", "astronaut", "group", "grace_hopper"]
    return [cv2.imencode(".jpg", images[n], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for n in order]
