"""Loading face-expression datasets into memory as prepared uint8 faces.

Two formats: the paper's folder-per-class layout (class names mapped through the aliases in
`ferlite.base.labels`, e.g. CK+'s `anger`/`sadness`), and the FER2013 CSV (`emotion,pixels,Usage`).
Every image goes through `preprocess.face_pixels`, the same code the face-detection service
runs. Unreadable files are skipped, counted and listed in one warning, never a crash mid-epoch.
Each sample keeps a SHA-1 of its bytes and a subject key so splits can keep duplicates and
subjects on one side.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ferlite.base import preprocess
from ferlite.base.labels import EMOTIONS, canonical

log = logging.getLogger("ferlite.training.datasets")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
# CK+ names files S<subject>_<sequence>_<frame>.png; the subject must never straddle splits.
DEFAULT_GROUP_PATTERN = r"^(S\d+)_"


class DatasetError(ValueError):
    """The dataset cannot be used as given; the message says why and where."""


@dataclass(frozen=True)
class Sample:
    source: str   # file path, or "<csv path>:<row>"
    label: int    # index into EMOTIONS
    group: str    # subject key ("" when unknown)
    digest: str   # SHA-1 of the file's bytes (or the CSV row's pixels)


@dataclass
class ImageSet:
    """Prepared faces (N×S×S×3 uint8) and what was loaded, skipped and dropped."""

    samples: list[Sample]
    pixels: np.ndarray
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet([self.samples[i] for i in index], self.pixels[index])

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples)
        return {name: counts.get(i, 0) for i, name in enumerate(EMOTIONS)}


def parse_class_map(items: Iterable[str]) -> dict[str, str | None]:
    """`contempt=disgust` maps a folder to a label; `contempt=drop` drops it."""
    out: dict[str, str | None] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip():
            raise DatasetError(f"--class-map entry {item!r} must look like FOLDER=LABEL or FOLDER=drop")
        if target.strip().lower() == "drop":
            out[name.strip().lower()] = None
            continue
        label = canonical(target)
        if label is None:
            raise DatasetError(f"--class-map {item!r}: {target!r} is not one of {', '.join(EMOTIONS)}")
        out[name.strip().lower()] = label
    return out


def class_folders(root: Path, class_map: dict[str, str | None] | None = None
                  ) -> tuple[dict[Path, int], dict[str, int]]:
    """Map each class folder to a label index; return (folders, dropped folder -> file count)."""
    if not root.is_dir():
        raise DatasetError(f"data folder not found: {root}")
    class_map = class_map or {}
    folders: dict[Path, int] = {}
    dropped: dict[str, int] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        key = sub.name.lower()
        label = class_map[key] if key in class_map else canonical(sub.name)
        if label is None:
            dropped[sub.name] = sum(1 for f in sub.rglob("*") if f.is_file())
            continue
        folders[sub] = EMOTIONS.index(label)
    if not folders:
        raise DatasetError(f"no class folders in {root}: expected sub-folders named after "
                           f"{', '.join(EMOTIONS)} (aliases allowed)")
    for folder in folders:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in folder.rglob("*") if f.is_file()):
            raise DatasetError(f"class folder {folder} has no images")
    return folders, dropped


def scan_folder(root: Path, class_map: dict[str, str | None] | None = None,
                group_pattern: str = DEFAULT_GROUP_PATTERN) -> tuple[list[tuple[Path, int, str]], dict[str, int]]:
    """List (path, label, group) for every image file under the class folders."""
    folders, dropped = class_folders(root, class_map)
    pattern = re.compile(group_pattern) if group_pattern else None
    items = []
    for folder, label in folders.items():
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                match = pattern.search(path.name) if pattern else None
                items.append((path, label, match.group(1) if match else ""))
    return items, dropped


def _prepare(image: np.ndarray, size: int, crop_faces: bool) -> np.ndarray:
    box = preprocess.largest_face(image) if crop_faces else None
    return preprocess.face_pixels(image, size, box)


def load_folder(root: str | Path, size: int, *, class_map: dict[str, str | None] | None = None,
                group_pattern: str = DEFAULT_GROUP_PATTERN, crop_faces: bool = False,
                limit_per_class: int | None = None, seed: int = 0, progress: bool = True) -> ImageSet:
    """Load a folder-per-class dataset; corrupt files are skipped and reported."""
    preprocess.check_size(size)
    items, dropped = scan_folder(Path(root), class_map, group_pattern)
    if limit_per_class:
        items = _limit(items, limit_per_class, seed)
    samples: list[Sample] = []
    faces: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    for path, label, group in tqdm(items, desc=f"loading {Path(root).name}", unit="img",
                                   disable=not progress, leave=False):
        try:
            data = path.read_bytes()
            face = _prepare(preprocess.decode_image(data), size, crop_faces)
        except (OSError, ValueError) as exc:
            skipped.append((str(path), str(exc)))
            continue
        samples.append(Sample(str(path), label, group, hashlib.sha1(data).hexdigest()))
        faces.append(face)
    return _finish(samples, faces, skipped, dropped, size, str(root))


def load_fer2013_csv(path: str | Path, size: int, *, limit_per_class: int | None = None,
                     seed: int = 0, progress: bool = True) -> ImageSet:
    """Load FER2013's CSV (emotion,pixels[,Usage]); its label order equals the canonical one."""
    preprocess.check_size(size)
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"FER2013 CSV not found: {path}")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or not {"emotion", "pixels"} <= set(rows[0]):
        raise DatasetError(f"{path} is not a FER2013 CSV: it needs the columns emotion,pixels")
    samples, faces, skipped = [], [], []
    indexed = [(i, r) for i, r in enumerate(rows, start=2)]
    if limit_per_class:
        indexed = [(i, r) for (i, r), _, _ in _limit([((i, r), r["emotion"], "") for i, r in indexed],
                                                     limit_per_class, seed)]
    for line, row in tqdm(indexed, desc=f"loading {path.name}", unit="img", disable=not progress, leave=False):
        source = f"{path}:{line}"
        try:
            label = int(row["emotion"])
            if not 0 <= label < len(EMOTIONS):
                raise ValueError(f"emotion {label} out of range 0..6")
            values = np.array(row["pixels"].split(), dtype=np.float64)
            side = round(np.sqrt(values.size))
            if side * side != values.size or side == 0:
                raise ValueError(f"{values.size} pixel values do not form a square image")
            if values.min() < 0 or values.max() > 255:
                raise ValueError("pixel values outside 0..255")
            image = values.astype(np.uint8).reshape(side, side)
        except (TypeError, ValueError) as exc:
            skipped.append((source, str(exc)))
            continue
        samples.append(Sample(source, label, "", hashlib.sha1(image.tobytes()).hexdigest()))
        faces.append(preprocess.face_pixels(image, size))
    return _finish(samples, faces, skipped, {}, size, str(path))


def load_dataset(path: str | Path, size: int, **options: object) -> ImageSet:
    """A folder-per-class dataset, or a FER2013 CSV when `path` is a .csv file."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() != ".csv":
        raise DatasetError(f"{path} is a file, not a dataset: give a folder with one sub-folder per class, or a "
                           "FER2013 .csv" + (" (a .npz from benchmarks/train_pack.py prepare is for "
                                             "benchmarks/train_pack.py train)" if path.suffix == ".npz" else ""))
    if path.suffix.lower() == ".csv":
        keep = {k: v for k, v in options.items() if k in {"limit_per_class", "seed", "progress"}}
        return load_fer2013_csv(path, size, **keep)  # type: ignore[arg-type]
    return load_folder(path, size, **options)  # type: ignore[arg-type]


def _limit(items: list, per_class: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    by_label: dict[object, list[int]] = {}
    for i, item in enumerate(items):
        by_label.setdefault(item[1], []).append(i)
    keep = sorted(j for idx in by_label.values()
                  for j in rng.permutation(idx)[:per_class])
    return [items[i] for i in keep]


def _finish(samples: list[Sample], faces: list[np.ndarray], skipped: list[tuple[str, str]],
            dropped: dict[str, int], size: int, where: str) -> ImageSet:
    if skipped:
        listing = "; ".join(f"{src} ({why})" for src, why in skipped[:20])
        more = f"; and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        log.warning("skipped %d unreadable image(s) in %s: %s%s", len(skipped), where, listing, more)
    if dropped:
        log.warning("dropped class folders outside the seven labels: %s (map them with --class-map)",
                    ", ".join(f"{k} ({v} files)" for k, v in dropped.items()))
    if not samples:
        raise DatasetError(f"no readable images in {where}")
    pixels = np.stack(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
    return ImageSet(samples, pixels, skipped, dropped)



def load_sources(entries: list[dict], size: int, crop_faces: bool = False, progress: bool = True) -> ImageSet:
    """Reload the images a split manifest lists (files, or `<csv>:<line>` rows of a FER2013 CSV)."""
    samples, faces, skipped = [], [], []
    csv_rows: dict[str, list[dict]] = {}
    for entry in tqdm(entries, desc="reloading split", unit="img", disable=not progress, leave=False):
        source, label = entry["source"], EMOTIONS.index(entry["label"])
        try:
            path, _, line = source.rpartition(":")
            if path.endswith(".csv") and line.isdigit():
                if path not in csv_rows:
                    with open(path, newline="") as fh:
                        csv_rows[path] = list(csv.DictReader(fh))
                values = np.array(csv_rows[path][int(line) - 2]["pixels"].split(), dtype=np.float64)
                side = round(np.sqrt(values.size))
                face = preprocess.face_pixels(values.astype(np.uint8).reshape(side, side), size)
            else:
                face = _prepare(preprocess.decode_image(Path(source).read_bytes()), size, crop_faces)
        except (OSError, ValueError, IndexError) as exc:
            skipped.append((source, str(exc)))
            continue
        samples.append(Sample(source, label, entry.get("group", ""), entry.get("sha1", "")))
        faces.append(face)
    return _finish(samples, faces, skipped, {}, size, "split manifest")
