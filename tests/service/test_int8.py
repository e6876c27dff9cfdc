"""int8 serving: the pack keeps a quantised file only within 0.5 pt of float on validation, the
repository builder picks each model's file by precision, and the classifier's real Triton answers
with the int8 model where the pack has one."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from ferlite.base import preprocess
from ferlite.base.model_metadata import PACK_DIR, ModelMetadata
from ferlite.services.classifier.config import ClassifierConfig
from ferlite.services.classifier.repository import build_repository
from ferlite.services.classifier.server import build
from ferlite.services.classifier.serving_graph import serving_graph
from ferlite.training import pack
from ferlite.v1 import classifier_pb2 as pb
from ferlite.v1 import classifier_pb2_grpc as pb_grpc
from ferlite.v1 import common_pb2


def pack_copy(tmp_path: Path, arch: str) -> Path:
    models = tmp_path / "models"
    shutil.copytree(PACK_DIR / arch, models / arch)
    return models


def test_repository_serves_the_file_precision_picks(tmp_path) -> None:
    models = pack_copy(tmp_path, "mobilenet_v2")
    folder = models / "mobilenet_v2"
    assert ModelMetadata.load(folder).files["onnx_int8"] == "model_int8.onnx"  # the shipped pack has one
    int8, float_ = (folder / "model_int8.onnx").read_bytes(), (folder / "model.onnx").read_bytes()
    build_repository(models, tmp_path / "e", "embedded")
    version = tmp_path / "e" / "mobilenet_v2" / "1"
    assert (version / "model_int8.onnx").read_bytes() == int8 and not (version / "model.onnx").exists()
    embedded = (tmp_path / "e" / "mobilenet_v2" / "config.pbtxt").read_text()
    assert 'key: "model_file" value: { string_value: "model_int8.onnx" }' in embedded
    # the classifier calibrates with the file's own temperature: Triton's config names the file
    assert 'key: "source_file" value: { string_value: "model_int8.onnx" }' in embedded
    build_repository(models, tmp_path / "f", "embedded", precision="float")
    assert (tmp_path / "f" / "mobilenet_v2" / "1" / "model.onnx").read_bytes() == float_
    # Triton's onnxruntime backend loads model.onnx: the picked file's graph with the serving steps
    def cluster_graph(repo: str) -> bytes:
        return onnx.load(str(tmp_path / repo / "mobilenet_v2" / "1" / "model.onnx")).SerializeToString()

    def served(name: str) -> bytes:
        return serving_graph(folder / name, flip=True).SerializeToString()

    assert int8 != float_ and served("model_int8.onnx") != served("model.onnx")
    build_repository(models, tmp_path / "c", "cluster")
    assert cluster_graph("c") == served("model_int8.onnx")
    assert 'key: "source_file" value: { string_value: "model_int8.onnx" }' in (
        tmp_path / "c" / "mobilenet_v2" / "config.pbtxt").read_text()
    build_repository(models, tmp_path / "g", "cluster", kind="KIND_GPU")  # auto: float on GPUs
    assert cluster_graph("g") == served("model.onnx")
    assert 'key: "source_file" value: { string_value: "model.onnx" }' in (
        tmp_path / "g" / "mobilenet_v2" / "config.pbtxt").read_text()
    build_repository(models, tmp_path / "h", "cluster", kind="KIND_GPU", precision="int8")
    assert cluster_graph("h") == served("model_int8.onnx")
    with pytest.raises(ValueError, match="precision"):
        build_repository(models, tmp_path / "x", precision="fp8")


def served_in_process(path: Path, meta: ModelMetadata, pixels: np.ndarray) -> np.ndarray:
    """What the classifier answers for `pixels`, computed here: the model's colour (grey crops for a
    grey model), its flip averaging and its file's own calibration."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = preprocess.match_colour(pixels, meta.colour).astype(np.float32) / np.float32(255.0)
    if not meta.flip_tta:
        return meta.for_file(path.name).calibrate(session.run(None, {"image": x})[0])
    probs = session.run(None, {"image": np.concatenate([x, x[:, :, ::-1]])})[0]
    return meta.for_file(path.name).calibrate((probs[:len(x)] + probs[len(x):]) / 2)


def test_the_classifier_answers_with_the_int8_model(tmp_path) -> None:
    models = pack_copy(tmp_path, "mobilenet_v2")
    meta = ModelMetadata.load(models / "mobilenet_v2")
    pixels = np.random.default_rng(3).integers(0, 256, (4, meta.input_size, meta.input_size, 3), dtype=np.uint8)
    int8 = served_in_process(models / "mobilenet_v2" / "model_int8.onnx", meta, pixels)
    float_ = served_in_process(models / "mobilenet_v2" / "model.onnx", meta, pixels)
    assert np.abs(int8 - float_).max() > 1e-3  # the two files answer differently: the check below can tell
    config = ClassifierConfig(min_val_accuracy=0.0, port=0, metrics_port=-1, model_dir=str(models),
                              triton_metrics_port=0,
                              repository_dir=str(tmp_path / "triton"))
    server = build(config).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            crops = [common_pb2.FaceCrop(height=meta.input_size, width=meta.input_size, channels=3,
                                         dtype=common_pb2.CROP_DTYPE_UINT8, data=p.tobytes()) for p in pixels]
            reply = pb_grpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(crops=crops), timeout=20)
    finally:
        server.stop(1)
    got = np.array([r.probabilities for r in reply.results])
    np.testing.assert_allclose(got, int8, atol=1e-4)


@pytest.mark.parametrize("tolerance, speedup, kept", [(1.0, 0.0, True), (-1.0, 0.0, False), (1.0, 1e6, False)])
def test_the_pack_keeps_an_int8_file_only_within_tolerance_and_faster(tmp_path, monkeypatch, tolerance, speedup,
                                                                     kept) -> None:
    """`add_int8` on a copy of a pack model with stand-in faces: the rule, not the figures. An int8
    file that is not faster than float is not served either (EfficientNetB0's is not)."""
    models = pack_copy(tmp_path, "mobilenet_v3_large")  # 48 px: quick to quantise
    folder = models / "mobilenet_v3_large"
    rng = np.random.default_rng(0)
    data = {f"x_{s}": rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
            for s, n in (("train", 60), ("val", 40), ("test", 30), ("ck48", 20))}
    data.update({f"y_{s}": rng.integers(0, 7, len(data[f"x_{s}"])) for s in ("train", "val", "test", "ck48")})
    monkeypatch.setattr(pack, "EDGE_TOLERANCE", tolerance)
    monkeypatch.setattr(pack, "INT8_MIN_SPEEDUP", speedup)
    meta = pack.add_int8(folder, data)
    check, card = meta.checks["onnx_int8"], (folder / "model_card.md").read_text()
    assert check["kept"] is kept and check["calibration_faces"] == 60
    assert ModelMetadata.load(folder) == meta
    if kept:
        assert meta.files["onnx_int8"] == "model_int8.onnx" and "Served on CPUs as `model_int8.onnx`" in card
        quantised = onnx.load(str(folder / "model_int8.onnx"))
        assert any(n.op_type == "QuantizeLinear" for n in quantised.graph.node)
        assert 0.0 <= check["accuracy"] <= 1.0 and "latency_ms" in check
        own = meta.file_calibration["model_int8.onnx"]  # its own temperature and threshold, on validation
        assert own["temperature"] > 0 and 0.0 <= own["abstain_below"] <= 1.0 and own["n"] == 40
        assert meta.for_file("model_int8.onnx").temperature == own["temperature"] and "own calibration" in card
    else:
        assert "onnx_int8" not in meta.files and not (folder / "model_int8.onnx").exists()
        assert "model_int8.onnx" not in meta.file_calibration
        assert "No int8 file" in card and meta.onnx_file() == "model.onnx"
        why = "not faster" if speedup > 1 else "lost more than 0.5 pt"
        assert why in check["rejected"] and why in card and "batch 1" in card  # the timings that decided
