"""`train_pack.py merge`: per architecture the variant with the best VALIDATION accuracy, each
candidate listed with what its job really did (a from-scratch job trains BatchNorm whatever the
run's --freeze-bn flag said)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def fake_run(folder: Path, val: float, job_freeze_bn: bool, flag_freeze_bn: bool) -> Path:
    folder.mkdir(parents=True)
    job = {"job": "efficientnet_b0", "architecture": "efficientnet_b0", "size": 128, "init": "random",
           "val_accuracy": val, "freeze_bn": job_freeze_bn, "epochs": 3}
    (folder / "results.json").write_text(json.dumps({"freeze_bn": flag_freeze_bn, "lr": 2e-4, "size": 128,
                                                      "jobs": {"efficientnet_b0": job}}))
    (folder / "efficientnet_b0.progress.json").write_text(json.dumps({**job, "history": []}))
    np.savez(folder / "efficientnet_b0.weights.npz", np.full(3, val))
    return folder


def test_merge_keeps_the_best_validation_variant_and_each_jobs_own_batchnorm(tmp_path) -> None:
    runs = [fake_run(tmp_path / "b0", 0.61, False, True), fake_run(tmp_path / "b0_cutout", 0.63, False, True)]
    out = tmp_path / "merged"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_pack.py"), "merge", "--runs",
                           *map(str, runs), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    merged = json.loads((out / "results.json").read_text())
    assert merged["jobs"]["efficientnet_b0"]["run"] == "b0_cutout"
    assert np.load(out / "efficientnet_b0.weights.npz")["arr_0"][0] == 0.63
    assert [(c["run"], c["freeze_bn"]) for c in merged["selection"]["efficientnet_b0"]] == [
        ("b0", False), ("b0_cutout", False)]
