"""End to end on generated data: train, evaluate, compare, export, resume, and CLI errors.

One small model (MobileNetV3-Small at 48 px, from scratch) is trained once for the module on the
synthetic cartoon-face set, which a CNN can learn; chance is 1/7.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

from ferlite.training.commands import compare_main, evaluate_main, export_main, train_main
from ferlite.training.synthetic import make_dataset

TRAIN_ARGS = ["--arch", "mobilenet_v3_small", "--image-size", "48", "--weights", "none",
              "--head-epochs", "2", "--finetune-epochs", "20", "--finetune-layers", "all",
              "--finetune-lr", "3e-3", "--batch-size", "16", "--patience", "20", "--seed", "7",
              "--no-latency"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    data = make_dataset(root / "data", per_class=60, size=48, subjects=20, seed=3)
    out = root / "run"
    assert train_main(["--data", str(data), "--out", str(out), *TRAIN_ARGS]) == 0
    return data, out, out / "mobilenet_v3_small"


def test_training_learns_clearly_above_chance(trained) -> None:
    _, _, run = trained
    report = json.loads((run / "evaluation.json").read_text())
    assert report["n"] >= 60
    assert report["accuracy"] > 0.35, report["accuracy"]  # chance is 0.143
    assert report["params_backbone"] == 939_120
    assert set(report) >= {"loss", "precision_macro", "recall_macro", "f1_macro", "f1_weighted",
                           "ece", "per_class", "confusion", "confusion_normalised", "size_bytes"}


def test_run_folder_holds_manifest_logs_and_reports(trained) -> None:
    _, out, run = trained
    manifest = json.loads((out / "split.json").read_text())
    sources = {n: {e["source"] for e in manifest["splits"][n]} for n in ("train", "val", "test")}
    assert not (sources["train"] & sources["test"]) and not (sources["train"] & sources["val"])
    groups = {n: {e["group"] for e in manifest["splits"][n]} for n in sources}
    assert not (groups["train"] & groups["test"])
    for name in ("model.keras", "history.json", "state.json", "evaluation_confusion.png",
                 "evaluation_confusion.json", "head.weights.h5"):
        assert (run / name).exists(), name
    assert any((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert list((run / "checkpoints").glob("*.weights.h5"))
    table = (out / "comparison.md").read_text()
    assert "| MobileNetV3Small |" in table and "0.94 M" in table
    assert (out / "comparison.csv").exists() and (out / "training_curves.png").exists()


def test_rerun_resumes_instead_of_retraining(trained, capsys, monkeypatch) -> None:
    """A finished run, run again with the same settings, trains nothing: no fit of either stage (a
    spy on keras.Model.fit raises), the head file is not rewritten, and the model's weights are the
    same arrays. (An earlier version checked an mtime with >= and a log line pytest never captured:
    it passed after a full retrain too.)"""
    import keras
    import numpy as np

    data, out, run = trained
    before = [w.copy() for w in keras.models.load_model(run / "model.keras").get_weights()]
    head_written = (run / "head.weights.h5").stat().st_mtime_ns
    fits: list[str] = []

    def no_fit(model, *args, **kwargs):
        fits.append(model.name)
        raise AssertionError(f"{model.name}.fit ran on a rerun of a finished training")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    assert train_main(["--data", str(data), "--out", str(out), *TRAIN_ARGS]) == 0
    assert fits == []
    assert (run / "head.weights.h5").stat().st_mtime_ns == head_written
    after = keras.models.load_model(run / "model.keras").get_weights()
    assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(after, before, strict=True))
    state = json.loads((run / "state.json").read_text())
    assert state["head_done"] and state["finetune_done"]
    changed = [a if a != "20" else "21" for a in TRAIN_ARGS]
    assert train_main(["--data", str(data), "--out", str(out), *changed]) == 2
    assert "different settings" in capsys.readouterr().err


def test_evaluate_and_compare_commands(trained, capsys) -> None:
    data, out, run = trained
    assert evaluate_main(["--run", str(run), "--data", str(data), "--no-latency"]) == 0
    report = json.loads((run / f"evaluation_{data.name}.json").read_text())
    assert report["n"] == 420
    assert compare_main([str(out), "--out", str(out / "cmp")]) == 0
    assert (out / "cmp" / "comparison.json").exists()


def test_export_matches_keras(trained, tmp_path) -> None:
    _, _, run = trained
    assert export_main(["--run", str(run), "--out", str(tmp_path), "--version", "3"]) == 0
    target = tmp_path / "mobilenet_v3_small"
    meta = json.loads((target / "metadata.json").read_text())
    checks = meta["checks"]
    for fmt in ("savedmodel", "onnx", "tflite"):
        assert checks[fmt]["max_abs_diff"] < 1e-4, (fmt, checks[fmt])
        assert checks[fmt]["accuracy"] == checks["keras"]["accuracy"]
    assert checks["tflite_int8"]["agreement"] >= 0.6, checks["tflite_int8"]
    assert checks["tflite_int8"]["bytes"] < checks["tflite"]["bytes"] / 2
    for name in ("model.keras", "model.onnx", "model_fp32.tflite", "model_int8.tflite", "model_card.md"):
        assert (target / name).exists(), name
    assert (target / "saved_model" / "saved_model.pb").exists()
    assert meta["version"] == 3 and meta["labels"][0] == "angry" and meta["input"]["size"] == 48
    ref = meta["reference"]
    assert abs(sum(ref["class_distribution"]) - 1) < 1e-6
    assert sum(ref["confidence_histogram"]["counts"]) == ref["n"] > 0
    assert "per-class recall" in (target / "model_card.md").read_text()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferlite", *args], capture_output=True, text=True, timeout=300)


def test_cli_errors_are_clear(tmp_path) -> None:
    missing = _cli("train", "--data", str(tmp_path / "nowhere"), "--arch", "mobilenet_v2")
    assert missing.returncode == 2
    assert "ferlite train: error: data folder not found" in missing.stderr
    make_dataset(tmp_path / "d", per_class=2, size=32, classes=("happy", "sad"))
    (tmp_path / "d" / "fear").mkdir()
    empty = _cli("train", "--data", str(tmp_path / "d"), "--arch", "mobilenet_v2")
    assert empty.returncode == 2 and "has no images" in empty.stderr
    unknown = _cli("train", "--data", str(tmp_path / "d"), "--arch", "resnet50")
    assert unknown.returncode == 2 and "invalid choice: 'resnet50'" in unknown.stderr
    assert "Traceback" not in missing.stderr + empty.stderr + unknown.stderr


def test_a_file_given_as_data_is_named_as_a_file_and_tensorflow_stays_quiet(tmp_path) -> None:
    """`ferlite train --data prepare.json`: one line saying what the file is and what to give instead,
    not "data folder not found" after six lines of TensorFlow start-up logging."""
    wrong = tmp_path / "fer2013.json"
    wrong.write_text("{}")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-m", "ferlite", "train", "--data", str(wrong), "--weights", "none"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert any("is a file, not a dataset" in line for line in lines), out.stderr[-2000:]
    assert len(lines) <= 2, out.stderr[-2000:]


def test_no_augment_help_does_not_claim_a_default_of_true(capsys) -> None:
    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = capsys.readouterr().out
    after = text.split("\n  --no-augment", 1)[1].split("\n  --", 1)[0]  # its entry, not the usage line
    assert "(default: True)" not in after and "on by default" in after
