"""Training continues from the shipped pack: its ONNX files give Keras weights back, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferlite.base.model_metadata import ModelMetadata
from ferlite.training import models, onnx_weights
from ferlite.training.export import onnx_runner
from tests.support.blobs import blobs

PACK = Path(__file__).resolve().parents[2] / "modelpack"


def faces(size: int, n: int = 6) -> np.ndarray:
    """Smooth face-sized blobs, not the uniform noise the loader's own check uses."""
    return blobs(size, n, seed=7)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"])
def test_each_shipped_model_comes_back_from_its_onnx_file(arch: str) -> None:
    meta = ModelMetadata.load(PACK / arch)
    model = models.build_model(arch, meta.input_size, "none")
    fresh = model.predict(faces(meta.input_size), verbose=0)
    set_layers = onnx_weights.load_onnx_weights(model, PACK / arch / meta.files["onnx"])
    assert set_layers > 80
    x = faces(meta.input_size)
    expected = onnx_runner(PACK / arch / meta.files["onnx"])(x)
    got = model.predict(x, verbose=0)
    assert np.max(np.abs(got - expected)) < onnx_weights.TOLERANCE
    assert np.max(np.abs(fresh - expected)) > 0.05  # random weights would not pass


def test_another_architecture_s_file_is_refused() -> None:
    model = models.build_model("mobilenet_v3_large", 128, "none")
    with pytest.raises(models.WeightsError, match="no weights for"):
        onnx_weights.load_onnx_weights(model, PACK / "mobilenet_v3_small" / "model.onnx")


def test_a_layer_set_wrong_is_caught_by_the_check(monkeypatch) -> None:
    """The loader compares the result with the ONNX model: a wrong offset in one BatchNorm fails."""
    assign = onnx_weights._assign

    def off_by_one(layer, entry) -> None:
        assign(layer, entry)
        if layer.name == "block3a_bn":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta + 1.0, mean, var])

    monkeypatch.setattr(onnx_weights, "_assign", off_by_one)
    model = models.build_model("efficientnet_b0", 128, "none")
    with pytest.raises(models.WeightsError, match="do not reproduce"):
        onnx_weights.load_onnx_weights(model, PACK / "efficientnet_b0" / "model.onnx")
