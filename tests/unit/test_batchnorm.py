"""A model read back from the pack can train BatchNorm once its statistics are measured again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferlite.base.model_metadata import ModelMetadata
from ferlite.training import batchnorm, models, onnx_weights
from ferlite.training.export import onnx_runner
from tests.support.blobs import blobs

PACK = Path(__file__).resolve().parents[2] / "modelpack"
ARCH = "mobilenet_v3_small"  # no dropout inside its backbone: training mode differs only by BatchNorm


@pytest.fixture(scope="module")
def shipped():
    meta = ModelMetadata.load(PACK / ARCH)
    return meta.input_size, PACK / ARCH / meta.files["onnx"]


def from_pack(size: int, onnx: Path):
    model = models.build_model(ARCH, size, "none")
    onnx_weights.load_onnx_weights(model, onnx)
    return model


def training_mode_gap(model, x: np.ndarray) -> float:
    """How far the pooled features in training mode (batch statistics) are from inference mode's,
    relative to their size."""
    features = models.feature_extractor(model)
    inference = np.asarray(features(x, training=False))
    training = np.asarray(features(x, training=True))
    return float(np.mean(np.abs(training - inference)) / np.mean(np.abs(inference)))


def test_recalibration_keeps_the_model_and_lets_batchnorm_train(shipped) -> None:
    size, onnx = shipped
    calibration = blobs(size, 64, seed=1)
    folded = from_pack(size, onnx)
    gap_folded = training_mode_gap(folded, calibration)

    model = from_pack(size, onnx)
    layers = batchnorm.recalibrate_batchnorm(model, [calibration[:32], calibration[32:]], check=calibration[:4])
    assert layers == len(batchnorm.batchnorm_layers(model)) > 30
    other = blobs(size, 8, seed=2)  # the same function on images it was not measured on
    assert np.max(np.abs(model.predict(other, verbose=0) - onnx_runner(onnx)(other))) < onnx_weights.TOLERANCE
    # The moving statistics are now those of the data the model sees.
    stats = batchnorm.input_statistics(model, [calibration])
    for layer in batchnorm.batchnorm_layers(model)[:5]:
        _, _, mean, variance = layer.get_weights()
        np.testing.assert_allclose(mean, stats[layer.name][0], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(variance, stats[layer.name][1], rtol=1e-3, atol=1e-4)
    # So training-mode BatchNorm computes nearly the shipped model; the folded form did not.
    gap = training_mode_gap(model, calibration)
    assert gap < 0.1 < gap_folded, (gap, gap_folded)


def test_nothing_to_measure_on_is_an_error(shipped) -> None:
    with pytest.raises(ValueError, match="no images"):
        batchnorm.recalibrate_batchnorm(from_pack(*shipped), [])
