"""ModelMetadata round trip and validation, calibration and abstention (NumPy only)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ferlite.base.labels import EMOTIONS
from ferlite.base.model_metadata import FILENAME, MetadataError, ModelMetadata, apply_temperature, find_models
from ferlite.training.calibration import choose_threshold, fit_temperature, selective


def test_round_trip_and_legacy_input_block(tmp_path) -> None:
    m = ModelMetadata("mobilenet_v2", 96, temperature=1.5, abstain_below=0.35, flip_tta=True,
                      validation={"accuracy": 0.66}, synthetic=True)
    m.save(tmp_path / "mobilenet_v2")
    data = json.loads((tmp_path / "mobilenet_v2" / FILENAME).read_text())
    assert data["input"]["size"] == 96 and data["labels"] == list(EMOTIONS)
    assert ModelMetadata.load(tmp_path / "mobilenet_v2") == m
    assert find_models(tmp_path) == [m]
    assert m.val_accuracy == 0.66


@pytest.mark.parametrize(("change", "needle"), [
    ({"labels": ["happy", *EMOTIONS[1:]]}, "label order"),
    ({"temperature": 0}, "temperature"),
    ({"abstain_below": 1.5}, "abstain_below"),
    ({"architecture": "resnet50"}, "unknown architecture"),
    ({"file_calibration": {"model_int8.onnx": {"temperature": 1.2}}}, "file_calibration"),
    ({"file_calibration": {"model_int8.onnx": {"temperature": -1, "abstain_below": 0.4}}}, "file_calibration"),
])
def test_inconsistent_metadata_is_refused_with_the_file_named(tmp_path, change, needle) -> None:
    data = ModelMetadata("mobilenet_v2", 96).to_dict() | change
    (tmp_path / FILENAME).write_text(json.dumps(data))
    with pytest.raises(MetadataError, match=needle) as err:
        ModelMetadata.load(tmp_path)
    assert str(tmp_path / FILENAME) in str(err.value)


def test_a_file_with_its_own_calibration_is_served_with_it(tmp_path) -> None:
    own = {"temperature": 1.3, "abstain_below": 0.41, "reference": {"mean_confidence": 0.5}}
    m = ModelMetadata("mobilenet_v2", 96, temperature=1.1, abstain_below=0.45, reference={"mean_confidence": 0.6},
                      files={"onnx": "model.onnx", "onnx_int8": "model_int8.onnx"},
                      file_calibration={"model_int8.onnx": own})
    m.save(tmp_path / "mobilenet_v2")
    assert ModelMetadata.load(tmp_path / "mobilenet_v2") == m
    int8 = m.for_file("model_int8.onnx")
    assert (int8.temperature, int8.abstain_below, int8.reference) == (1.3, 0.41, {"mean_confidence": 0.5})
    assert m.for_file("model.onnx") is m and m.for_file("") is m
    probs = np.array([[0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02]], np.float32)
    np.testing.assert_allclose(int8.calibrate(probs), apply_temperature(probs, 1.3))


def test_missing_metadata_says_how_to_make_it(tmp_path) -> None:
    with pytest.raises(MetadataError, match="ferlite export"):
        ModelMetadata.load(tmp_path)


def overconfident(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Predictions right 60 % of the time, each claiming ~95 % confidence."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, n)
    pred = np.where(rng.random(n) < 0.6, labels, (labels + rng.integers(1, 7, n)) % 7)
    logits = rng.normal(0, 0.3, (n, 7))
    logits[np.arange(n), pred] += 4.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def test_temperature_tames_overconfidence_without_changing_labels() -> None:
    probs, labels = overconfident()
    t = fit_temperature(probs, labels)
    assert t > 1.5
    calibrated = apply_temperature(probs, t)
    assert (calibrated.argmax(1) == probs.argmax(1)).all()
    assert abs(calibrated.max(1).mean() - 0.6) < 0.08 < abs(probs.max(1).mean() - 0.6)


def test_threshold_keeps_most_faces_and_raises_accuracy() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 3000)
    confidence = rng.uniform(0.2, 1.0, 3000)
    correct = rng.random(3000) < confidence          # confident predictions are right more often
    pred = np.where(correct, labels, (labels + 1) % 7)
    probs = np.full((3000, 7), 0.0)
    probs[np.arange(3000), pred] = confidence
    probs[np.arange(3000), (pred + 1) % 7] = 1 - confidence
    a = choose_threshold(probs, labels, min_coverage=0.8)
    assert 0.8 <= a.coverage < 0.85
    assert a.selective_accuracy > a.accuracy + 0.04
    assert selective(probs, labels, 0.0).coverage == 1.0


def test_the_served_onnx_file_follows_precision_and_device() -> None:
    with_int8 = ModelMetadata("mobilenet_v2", 96, files={"onnx": "model.onnx", "onnx_int8": "model_int8.onnx"})
    assert with_int8.onnx_file() == with_int8.onnx_file("int8") == "model_int8.onnx"
    assert with_int8.onnx_file("float") == with_int8.onnx_file("auto", gpu=True) == "model.onnx"
    assert with_int8.onnx_file("int8", gpu=True) == "model_int8.onnx"
    assert ModelMetadata("mobilenet_v2", 96, files={"onnx": "model.onnx"}).onnx_file("int8") == "model.onnx"
    with pytest.raises(MetadataError, match="precision"):
        with_int8.onnx_file("fp8")


def test_colour_is_rgb_or_grey_and_older_files_mean_rgb(tmp_path) -> None:
    with pytest.raises(MetadataError, match="colour"):
        ModelMetadata("mobilenet_v2", 96, colour="sepia")
    m = ModelMetadata("mobilenet_v2", 96, colour="grey")
    m.save(tmp_path)
    assert ModelMetadata.load(tmp_path).colour == "grey"
    data = json.loads((tmp_path / "metadata.json").read_text())
    del data["colour"]
    (tmp_path / "metadata.json").write_text(json.dumps(data))
    assert ModelMetadata.load(tmp_path).colour == "rgb"
