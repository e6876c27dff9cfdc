"""The classifier core without gRPC or Triton: a scripted backend stands in for Triton (a test
double, named as such), so routing, the quality gate, resizing, flips and calibration are tested
directly and fast."""

from __future__ import annotations

import numpy as np
import pytest

from ferlite.base.architectures import ARCHITECTURES
from ferlite.base.model_metadata import ModelMetadata
from ferlite.services.classifier.backend import Inference
from ferlite.services.classifier.core import Classifier, InvalidInput
from ferlite.services.classifier.policy import PolicyStore
from ferlite.services.common.metrics import ServiceMetrics


class ScriptedBackend:
    """Test double of TritonBackend: records each call (the flip request included: mirroring is
    the backend's or the Triton model's job) and answers a fixed distribution."""

    def __init__(self) -> None:
        self.ready = set(ARCHITECTURES)
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.dtypes: list[np.dtype] = []
        self.flips: list[bool] = []
        self.batches: list[np.ndarray] = []
        self.model_file = ""  # what Triton says it serves (ServedModel.file)

    def infer(self, architecture: str, batch: np.ndarray, timeout: float, flip: bool = False) -> Inference:
        self.calls.append((architecture, batch.shape))
        self.dtypes.append(batch.dtype)
        self.flips.append(flip)
        self.batches.append(batch.copy())
        probs = np.tile(np.array([0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1], np.float32), (len(batch), 1))
        return Inference(probs, "1", self.model_file)


def core(metadata: dict[str, ModelMetadata], floor: float = 0.3) -> tuple[Classifier, ScriptedBackend, ServiceMetrics]:
    backend = ScriptedBackend()
    metrics = ServiceMetrics("classifier")
    return Classifier(backend, PolicyStore(), metadata, metrics, min_val_accuracy=floor), \
        backend, metrics


def meta(arch: str, size: int = 48, val: float | None = 0.6, **kw) -> ModelMetadata:
    return ModelMetadata(arch, size, validation={} if val is None else {"accuracy": val}, **kw)


def test_quality_gate_keeps_a_weak_arm_from_traffic() -> None:
    c, backend, metrics = core({"mobilenet_v2": meta("mobilenet_v2"),
                                "efficientnet_b0": meta("efficientnet_b0", val=0.11)})
    batch = np.zeros((2, 48, 48, 3), np.float32)
    for i in range(40):
        assert c.classify(batch, routing_key=f"stream-{i}").primary.architecture == "mobilenet_v2"
    assert {a for a, _ in backend.calls} == {"mobilenet_v2"}
    with pytest.raises(InvalidInput, match="quality gate"):
        c.classify(batch, architecture="efficientnet_b0")
    registry = metrics.registry
    assert registry.get_sample_value("ferlite_classifier_arm_gated", {"architecture": "efficientnet_b0"}) == 1
    assert registry.get_sample_value("ferlite_classifier_ab_weight", {"architecture": "efficientnet_b0"}) == 0
    assert registry.get_sample_value("ferlite_classifier_ab_weight", {"architecture": "mobilenet_v2"}) == 1


def test_crops_are_resized_to_each_models_own_size() -> None:
    c, backend, _ = core({"mobilenet_v2": meta("mobilenet_v2", 96),
                          "mobilenet_v3_small": meta("mobilenet_v3_small", 48)})
    batch = np.random.default_rng(0).random((3, 96, 96, 3), dtype=np.float32)
    c.classify(batch, architecture="mobilenet_v3_small")
    c.classify(batch, architecture="mobilenet_v2")
    assert backend.calls == [("mobilenet_v3_small", (3, 48, 48, 3)), ("mobilenet_v2", (3, 96, 96, 3))]
    assert backend.flips == [False, False]


def test_flips_temperature_and_abstention_come_from_the_metadata() -> None:
    m = meta("mobilenet_v2", flip_tta=True, temperature=2.0, abstain_below=0.4)
    c, backend, _ = core({"mobilenet_v2": m})
    result = c.classify(np.zeros((2, 48, 48, 3), np.float32)).primary
    assert backend.calls == [("mobilenet_v2", (2, 48, 48, 3))] and backend.flips == [True]  # each face once
    assert result.probabilities.shape == (2, 7)
    raw = np.array([0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1])
    expected = raw ** 0.5 / (raw ** 0.5).sum()
    np.testing.assert_allclose(result.probabilities[0], expected, rtol=1e-5)
    assert result.probabilities[0].max() < 0.4                    # calibrated confidence 0.33
    assert result.uncertain.tolist() == [True, True]
    sure = core({"mobilenet_v2": meta("mobilenet_v2", abstain_below=0.3)})[0]
    assert sure.classify(np.zeros((1, 48, 48, 3), np.float32)).primary.uncertain.tolist() == [False]


def test_the_served_file_brings_its_own_calibration() -> None:
    own = {"temperature": 2.0, "abstain_below": 0.5}
    m = meta("mobilenet_v2", temperature=1.0, abstain_below=0.0, file_calibration={"model_int8.onnx": own})
    c, backend, _ = core({"mobilenet_v2": m})
    raw = np.array([0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1])
    float_ = c.classify(np.zeros((1, 48, 48, 3), np.float32)).primary
    np.testing.assert_allclose(float_.probabilities[0], raw, rtol=1e-5)
    assert float_.uncertain.tolist() == [False]
    backend.model_file = "model_int8.onnx"  # Triton serves the int8 file: its temperature and threshold
    int8 = c.classify(np.zeros((1, 48, 48, 3), np.float32)).primary
    np.testing.assert_allclose(int8.probabilities[0], raw ** 0.5 / (raw ** 0.5).sum(), rtol=1e-5)
    assert int8.uncertain.tolist() == [True]


def test_uint8_crops_stay_pixels_to_the_backend_and_convert_exactly_for_either_model_input() -> None:
    from ferlite.base import preprocess
    from ferlite.services.classifier.backend import as_model_input
    from ferlite.services.classifier.core import decode_crops

    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    batch = decode_crops([(64, 64, 3, "uint8", p.tobytes()) for p in pixels], 8)
    assert batch.dtype == np.uint8  # a quarter of float32's bytes, all the way to Triton
    c, backend, _ = core({"mobilenet_v2": meta("mobilenet_v2", 48, flip_tta=True)})
    c.classify(batch)
    assert backend.calls == [("mobilenet_v2", (2, 48, 48, 3))] and backend.dtypes == [np.uint8]
    # An FP32 model (Triton's ONNX Runtime backend) gets exactly the shared x / 255.
    np.testing.assert_array_equal(as_model_input(pixels, "FP32"), preprocess.normalize(pixels))
    # Floats a client sent go to a UINT8 model as the pixels they came from.
    np.testing.assert_array_equal(as_model_input(preprocess.normalize(pixels), "UINT8"), pixels)
    mixed = decode_crops([(64, 64, 3, "uint8", pixels[0].tobytes()),
                          (64, 64, 3, "float32", preprocess.normalize(pixels[1]).astype("<f4").tobytes())], 8)
    assert mixed.dtype == np.float32
    np.testing.assert_array_equal(mixed[0], preprocess.normalize(pixels[0]))


def test_the_triton_model_stops_its_runtime_threads_spinning_after_each_run(monkeypatch) -> None:
    """Spinning threads would hold both cores while Triton, the classifier and face detection
    handle the answer (benchmarks/e2e_bench.py measured the cost)."""
    import importlib.util
    import sys
    import types

    from ferlite.services.classifier import repository

    # A stand-in for the module only Triton's Python backend provides; session_options needs none of it.
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    spec = importlib.util.spec_from_file_location("triton_model", repository.MODEL_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    options = module.session_options(2)
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_a_grey_model_gets_grey_crops_and_a_colour_model_the_crops_as_sent(dtype) -> None:
    """Colour parity: a model that learnt from grey faces (FER2013) is served each crop's luma on
    all three channels, the way its training replicated grey faces; an RGB model gets the colour."""
    c, backend, _ = core({"mobilenet_v2": meta("mobilenet_v2", colour="grey"),
                          "mobilenet_v3_small": meta("mobilenet_v3_small", colour="rgb")})
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (2, 48, 48, 3)).astype(np.uint8)
    batch = batch if dtype == np.uint8 else (batch / 255.0).astype(np.float32)
    c.classify(batch, architecture="mobilenet_v2")
    c.classify(batch, architecture="mobilenet_v3_small")
    grey, colour = backend.batches
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 1], grey[..., 2])
    luma = batch.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(grey[..., 0] - luma).max() <= (1.0 if dtype == np.uint8 else 1e-3)
    assert np.array_equal(colour, batch)
