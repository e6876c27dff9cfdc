"""The pack trainer on a CPU: a job continues from the shipped pack (`--init-pack`) and, killed
between epochs, continues from its last finished epoch when the same command runs again (and only
the same: other settings into that --out are refused)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from ferlite.training import models  # after the skip: it needs TensorFlow

ROOT = Path(__file__).resolve().parents[2]
JOB = "mobilenet_v3_small"


def tiny_data(folder: Path) -> tuple[Path, Path]:
    """prepare's format: 48x48 grey faces and labels per split; the teacher's probabilities beside."""
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8) for s, n in (("train", 96), ("val", 32))}
    arrays.update({f"y_{s}": rng.integers(0, 7, len(arrays[f"x_{s}"])).astype(np.uint8) for s in ("train", "val")})
    np.savez(folder / "data.npz", **arrays)
    np.save(folder / "teacher.npy", rng.dirichlet(np.ones(7), 96).astype(np.float32))
    return folder / "data.npz", folder / "teacher.npy"


def command(data: Path, teacher: Path, out: Path) -> list[str]:
    return [sys.executable, str(ROOT / "benchmarks" / "train_pack.py"), "train", "--data", str(data), "--jobs", "pack",
            "--archs", JOB, "--size", "128", "--init-pack", str(ROOT / "modelpack"), "--teacher-soft", str(teacher),
            "--distill-pretrained", "--epochs", "0,4,0,0", "--batch-size", "16", "--augment", "host",
            "--host-workers", "1", "--out", str(out)]


def test_a_killed_job_continues_from_its_last_epoch(tmp_path) -> None:
    data, teacher = tiny_data(tmp_path)
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    first = subprocess.Popen(command(data, teacher, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
    checkpoint, deadline = out / f"{JOB}.last.npz", time.monotonic() + 240
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)  # as a machine's time limit would, right after epoch 1 is saved
    log = first.communicate(timeout=60)[0]
    assert checkpoint.exists(), log[-2000:]
    assert f"{JOB}: starts from" in log and "modelpack" in log
    results = out / "results.json"
    assert JOB not in json.loads(results.read_text())["jobs"]  # killed before it ended
    stopped_at = json.loads(str(np.load(checkpoint)["state"]))["epoch"]
    assert 1 <= stopped_at < 4

    # The same --out with BatchNorm trained instead: refused, not continued from the frozen run's epoch.
    other = subprocess.run([*command(data, teacher, out), "--pack-bn", "train"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert other.returncode != 0 and "freeze_bn True there, False here" in other.stderr, other.stderr[-2000:]
    assert "Use a new --out" in other.stderr and "epoch" not in other.stdout
    assert json.loads(str(np.load(checkpoint)["state"]))["epoch"] == stopped_at
    other = subprocess.run([*command(data, teacher, out), "--cutout", "0.5"], capture_output=True, text=True,
                           env=env, timeout=120)  # so is another augmentation
    assert other.returncode != 0 and "cutout 0.0 there, 0.5 here" in other.stderr, other.stderr[-2000:]
    other = subprocess.run([*command(data, teacher, out), "--shift", "0.1", "--label-smoothing", "0"],
                           capture_output=True, text=True, env=env, timeout=120)  # and another recipe
    assert other.returncode != 0 and "shift 0.0 there, 0.1 here" in other.stderr, other.stderr[-2000:]
    assert "label_smoothing 0.1 there, 0.0 here" in other.stderr

    second = subprocess.run(command(data, teacher, out), capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"{JOB}: continues after epoch {stopped_at}" in second.stdout
    job = json.loads((out / "results.json").read_text())["jobs"][JOB]
    assert job["init"] == "imagenet" and "earlier pack's model" in job["continued_from"]  # its first init
    assert job["continued_from_file"].endswith("model.onnx") and job["resumed_after_epoch"] == stopped_at
    assert [h["epoch"] for h in job["history"]] == [1, 2, 3, 4] and job["epochs"] == 4
    assert f"epoch {stopped_at}/4" not in second.stdout  # the finished epochs were not run again


def test_pack_bn_train_measures_batchnorm_and_trains_it(tmp_path) -> None:
    """--pack-bn train: BatchNorm statistics measured before the first epoch, BatchNorm trainable,
    and the starting model unchanged by the measuring (its validation figure is the shipped one's)."""
    data, teacher = tiny_data(tmp_path)
    out = tmp_path / "run"
    args = command(data, teacher, out)
    args[args.index("0,4,0,0")] = "0,1,0,0"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    frozen = subprocess.run([*args, "--out", str(tmp_path / "frozen")], capture_output=True, text=True, env=env,
                            timeout=300)
    trained = subprocess.run([*args, "--pack-bn", "train", "--bn-images", "64", "--cutout", "0.5"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert trained.returncode == 0 and frozen.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert "BatchNorm statistics of 34 layers measured on 64 faces" in trained.stdout
    results = json.loads((out / "results.json").read_text())
    job = results["jobs"][JOB]
    before = json.loads((tmp_path / "frozen" / "results.json").read_text())["jobs"][JOB]
    assert job["freeze_bn"] is False and before["freeze_bn"] is True
    assert results["cutout"] == 0.5  # random erasing on the host batches
    assert job["bn_recalibrated"] == {"layers": 34, "faces": 64}
    assert job["init_val_accuracy"] == before["init_val_accuracy"]
    # The folded form's moving means are zeros (and frozen, they stay so); measured ones are not.
    zeros = {run: sum(not np.any(w) for w in models.read_weights_npz(run / f"{JOB}.weights.npz"))
             for run in (out, tmp_path / "frozen")}
    assert zeros[out] <= zeros[tmp_path / "frozen"] - 34, zeros
