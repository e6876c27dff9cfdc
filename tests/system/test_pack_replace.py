"""`train_pack.py replace`: a later run's model takes a pack model's place only when it gains at least
--margin on validation; a gain of a few faces leaves the pack as it is."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCH = "mobilenet_v2"


def shipped_validation() -> float:
    return json.loads((ROOT / "modelpack" / ARCH / "metadata.json").read_text())["validation"]["accuracy"]


def replace(run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_pack.py"), "replace", "--run", str(run),
                           "--arch", ARCH, "--how", "a test", *extra], capture_output=True, text=True, timeout=120)


def test_a_gain_within_the_margin_keeps_the_shipped_model(tmp_path) -> None:
    three_faces = 3 / 4306
    job = {"architecture": ARCH, "size": 128, "val_accuracy": shipped_validation() + three_faces, "flip_tta": False}
    (tmp_path / "results.json").write_text(json.dumps({"jobs": {ARCH: job}}))
    folder = ROOT / "modelpack" / ARCH
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}

    done = replace(tmp_path)  # the default margin, half a point
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{ARCH}: the shipped model stays" in done.stdout and "--margin 0.005" in done.stdout
    done = replace(tmp_path, "--margin", "0.002")  # 3 faces are 0.0007: still within it
    assert done.returncode == 0 and "--margin 0.002" in done.stdout and "stays" in done.stdout

    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before
    assert "replaced" not in done.stdout
