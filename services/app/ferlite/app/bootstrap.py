"""Small default models for a machine that has none: the demo's models, made from nothing.

Trains all four architectures briefly on the synthetic cartoon-face set (`ferlite synth`) and
exports them, so `ferlite up` and `ferlite demo` work on a fresh clone without data or network.
They exercise the whole system; they are NOT meant to read real faces. Real models come from
`ferlite train --data YOUR_FACES --export models` (see the README).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ferlite.base.model_metadata import find_models

BOOTSTRAP_SIZE = 64


def bootstrap_command(model_dir: Path, work: Path) -> list[list[str]]:
    py = [sys.executable, "-m", "ferlite"]
    return [
        [*py, "synth", str(work / "synthetic"), "--per-class", "50", "--size", "64", "--subjects", "10"],
        [*py, "train", "--data", str(work / "synthetic"), "--out", str(work / "run"), "--image-size",
         str(BOOTSTRAP_SIZE), "--weights", "none", "--head-epochs", "2", "--finetune-epochs", "6",
         "--finetune-layers", "all", "--finetune-lr", "3e-3", "--batch-size", "16", "--no-latency", "--demo-model",
         "--export", str(model_dir), "--formats", "onnx"],
    ]


def bootstrap_models(model_dir: Path, work: Path) -> None:
    print(f"no models in {model_dir}: training small demo models on synthetic faces (a few minutes on a CPU)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for cmd in bootstrap_command(model_dir, work):
        print("$ " + " ".join(cmd[2:] if cmd[:2] == [sys.executable, "-m"] else cmd), flush=True)
        subprocess.run(cmd, check=True, env=env)


def has_models(model_dir: Path) -> bool:
    return bool(find_models(model_dir))
