"""Shared fixtures: small models exported by the real `ferlite train` + `ferlite export` path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Under CI, a skip for a missing dependency fails the run (tests/support/ci_skips.py).
pytest_plugins = ["tests.support.ci_skips"]

ROOT = Path(__file__).resolve().parent.parent
TINY_SIZE = 32
# The test models are barely trained on synthetic faces: below the classifier's quality gate on
# purpose. Services the tests start as processes (ferlite up) serve them anyway.
os.environ["FERLITE_CLASSIFIER_MIN_VAL_ACCURACY"] = "0"


LEVELS = ("unit", "service", "system")


def pytest_collection_modifyitems(config, items) -> None:
    """The cost mark comes from the folder, never by hand: tests/unit (fast), tests/service and
    tests/system (both also `slow`). `pytest -m unit` runs the fast ones."""
    for item in items:
        level = next((part for part in Path(str(item.fspath)).relative_to(ROOT / "tests").parts[:-1]
                      if part in LEVELS), None)
        if level is None:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/unit, tests/service or tests/system")
        item.add_marker(getattr(pytest.mark, level))
        if level != "unit":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory) -> Path:
    """All four architectures, trained briefly at 32 px on synthetic faces and exported to ONNX.

    Barely trained models give near-uniform probabilities: tests using them check routing,
    shapes and plumbing, never accuracy.
    """
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("exported")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = [sys.executable, "-m", "ferlite"]
    subprocess.run([*run, "synth", str(root / "data"), "--per-class", "6", "--size", "40", "--subjects", "6"],
                   check=True, capture_output=True, env=env)
    result = subprocess.run(
        [*run, "train", "--data", str(root / "data"), "--out", str(root / "run"), "--image-size", str(TINY_SIZE),
         "--weights", "none", "--head-epochs", "1", "--finetune-epochs", "0", "--no-latency",
         "--export", str(root / "models"), "--formats", "onnx"],
        capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "models"


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """A local CA, server and client certificates from scripts/make_certs.sh."""
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(ROOT / "scripts/make_certs.sh"), str(out)], check=True, capture_output=True)
    return out
