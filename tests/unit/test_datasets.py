"""Dataset loaders: aliases, dropped classes, corrupt files, FER2013 CSV, clear errors."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from ferlite.base.labels import EMOTIONS
from ferlite.training.datasets import DatasetError, load_dataset, load_fer2013_csv, load_folder, parse_class_map


def _image(path, value: int = 128, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size), value, np.uint8)
    img[::7] = 255 - value  # make each file's bytes distinct per value
    cv2.imwrite(str(path), img)


@pytest.fixture
def ck_like(tmp_path):
    """CK+-style folder names (anger, sadness, contempt) and subject-prefixed files."""
    for cls, n in {"anger": 3, "sadness": 2, "happy": 2, "contempt": 2}.items():
        for i in range(n):
            _image(tmp_path / cls / f"S{100 + i:03d}_001_0000001{i}.png", value=10 * i + len(cls))
    return tmp_path


def test_aliases_map_to_canonical_labels_and_greyscale_becomes_rgb(ck_like) -> None:
    data = load_folder(ck_like, 32, progress=False)
    counts = data.class_counts()
    assert counts["angry"] == 3 and counts["sad"] == 2 and counts["happy"] == 2
    assert data.pixels.shape == (7, 32, 32, 3)
    assert data.dropped == {"contempt": 2}
    assert {s.group for s in data.samples} == {"S100", "S101", "S102"}


def test_class_map_can_keep_an_extra_class(ck_like) -> None:
    data = load_folder(ck_like, 32, class_map=parse_class_map(["contempt=disgust"]), progress=False)
    assert data.class_counts()["disgust"] == 2
    with pytest.raises(DatasetError, match="not one of"):
        parse_class_map(["contempt=smug"])


def test_corrupt_files_are_skipped_counted_and_listed(ck_like, caplog) -> None:
    (ck_like / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    (ck_like / "happy" / "empty.jpg").write_bytes(b"")
    (ck_like / "happy" / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    with caplog.at_level(logging.WARNING):
        data = load_folder(ck_like, 32, progress=False)
    assert len(data.samples) == 7
    assert sorted(p.rsplit("/", 1)[-1] for p, _ in data.skipped) == ["broken.png", "empty.jpg"]
    assert "skipped 2 unreadable image(s)" in caplog.text and "broken.png" in caplog.text


def test_missing_folder_and_empty_class_are_clear_errors(tmp_path) -> None:
    with pytest.raises(DatasetError, match="data folder not found"):
        load_folder(tmp_path / "nope", 32)
    (tmp_path / "fear").mkdir()
    _image(tmp_path / "happy" / "a.png")
    with pytest.raises(DatasetError, match=r"class folder .*fear has no images"):
        load_folder(tmp_path, 32)
    with pytest.raises(DatasetError, match="no class folders"):
        load_folder(tmp_path / "happy", 32)


def test_fer2013_csv_with_bad_rows(tmp_path, caplog) -> None:
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for label in range(7):
        rows.append(f"{label},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},Training")
    rows.append("9," + " ".join(["1"] * 2304) + ",Training")       # label out of range
    rows.append("3," + " ".join(["1"] * 100) + ",Training")        # not square... 10x10 is square
    rows.append("3,1 2 3,PublicTest")                               # 3 values: not square
    rows.append("x,1 2 3 4,Training")                               # bad label
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        data = load_fer2013_csv(path, 32, progress=False)
    assert [EMOTIONS[s.label] for s in data.samples[:7]] == list(EMOTIONS)
    assert len(data.samples) == 8  # 7 + the 10x10 image
    assert len(data.skipped) == 3
    assert load_dataset(path, 32, progress=False).pixels.shape == (8, 32, 32, 3)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not a FER2013 CSV"):
        load_fer2013_csv(tmp_path / "bad.csv", 32)
