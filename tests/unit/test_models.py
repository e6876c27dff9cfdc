"""The architecture registry: Table 1 parameter counts, input adaptation, weights options."""

from __future__ import annotations

import numpy as np
import pytest

from ferlite.base.architectures import ARCHITECTURES

keras = pytest.importorskip("keras")
from ferlite.training import models  # noqa: E402

TABLE_1 = {"mobilenet_v2": 2_257_984, "mobilenet_v3_small": 939_120,
           "mobilenet_v3_large": 2_996_352, "efficientnet_b0": 4_049_571}


def test_registry_holds_the_four_architectures_in_order() -> None:
    assert tuple(models.REGISTRY) == ARCHITECTURES == tuple(TABLE_1)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_backbone_parameter_counts_equal_table_1(name: str) -> None:
    model = models.build_model(name, size=32, weights="none")
    assert models.backbone_params(model) == TABLE_1[name] == models.get(name).paper_backbone_params
    assert model.output_shape == (None, 7)
    assert model.input_shape == (None, 32, 32, 3)


def test_input_adaptation_maps_unit_range_to_backbone_range() -> None:
    v2 = models.build_model("mobilenet_v2", size=32, weights="none")
    adapt = v2.get_layer("input_adapt")
    x = np.array([[[[0.0, 0.5, 1.0]]]], np.float32)
    assert np.allclose(adapt(x).numpy(), [[[[-1.0, 0.0, 1.0]]]])
    b0 = models.build_model("efficientnet_b0", size=32, weights="none")
    assert np.allclose(b0.get_layer("input_adapt")(x).numpy(), [[[[0.0, 127.5, 255.0]]]])


def test_weights_from_a_file_and_clear_errors(tmp_path, monkeypatch) -> None:
    source = models.build_backbone("mobilenet_v3_small", 32, "none")
    path = tmp_path / "backbone.weights.h5"
    source.save_weights(str(path))
    loaded = models.build_backbone("mobilenet_v3_small", 32, str(path))
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        assert np.array_equal(a, b)
    with pytest.raises(models.WeightsError, match="weights file not found"):
        models.build_backbone("mobilenet_v3_small", 32, str(tmp_path / "missing.h5"))
    with pytest.raises(models.WeightsError, match="does not fit"):
        models.build_backbone("mobilenet_v2", 32, str(path))
    with pytest.raises(ValueError, match="unknown architecture 'resnet50'"):
        models.get("resnet50")


def test_imagenet_download_failure_is_explained(monkeypatch) -> None:
    """The real imagenet path is kept; when the download fails the error says what to do."""
    def no_network(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    import keras.src.applications.mobilenet_v3 as v3

    monkeypatch.setattr(v3.file_utils, "get_file", no_network)
    with pytest.raises(models.WeightsError, match="--weights none"):
        models.build_backbone("mobilenet_v3_small", 224, "imagenet")
