"""The served models do the serving steps around the network: uint8 pixels in, each face averaged
with its mirror image inside the model (the embedded Python model in NumPy, the cluster flavour's
graph in ONNX), so the classifier sends every face once. Against a Triton that does not flip (a
plain exported graph), the classifier still mirrors the faces itself: the answers are the same."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ferlite.base.model_metadata import PACK_DIR, ModelMetadata, find_models
from ferlite.services.classifier.backend import ServedModel, TritonBackend
from ferlite.services.classifier.repository import build_repository
from ferlite.services.classifier.serving_graph import serving_graph
from ferlite.services.classifier.triton import EmbeddedTriton

ARCH = "mobilenet_v3_large"  # the pack's smallest input (48 px): the quickest to serve


def test_served_model_is_read_from_the_triton_config() -> None:
    embedded = {"input": [{"name": "image", "data_type": "TYPE_UINT8"}],
                "parameters": {"flip_tta": {"string_value": "1"}, "source_file": {"string_value": "model_int8.onnx"}}}
    assert ServedModel.from_config(embedded) == ServedModel("UINT8", flips=True, file="model_int8.onnx")
    cluster = {"input": [{"name": "image", "data_type": "TYPE_FP32"}]}  # the exported graph, no parameters
    assert ServedModel.from_config(cluster) == ServedModel("FP32", flips=False)


def in_process(folder: Path, meta: ModelMetadata, pixels: np.ndarray,
               precision: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(the faces alone, the faces averaged with their mirror images), as probabilities."""
    session = ort.InferenceSession(str(folder / meta.onnx_file(precision)), providers=["CPUExecutionProvider"])
    x = pixels.astype(np.float32) / np.float32(255.0)
    alone = session.run(None, {"image": x})[0]
    mirror = session.run(None, {"image": np.ascontiguousarray(x[:, :, ::-1])})[0]
    return alone, (alone + mirror) / 2


def inference_count(backend: TritonBackend) -> int:
    """Faces Triton has run through the model (its statistics count batch items)."""
    stats = backend.client.get_inference_statistics(ARCH, as_json=True)["model_stats"][0]
    return int(stats.get("inference_count", 0))


@pytest.mark.parametrize("in_model", [True, False], ids=["flip-in-model", "flip-by-classifier"])
def test_flip_averaging_in_the_model_or_the_classifier(tmp_path, in_model) -> None:
    models = tmp_path / "models"
    shutil.copytree(PACK_DIR / ARCH, models / ARCH)
    meta = ModelMetadata.load(models / ARCH)
    assert meta.flip_tta  # the pack's models average with the mirror image
    repo = tmp_path / "repo"
    build_repository(models, repo, "embedded")
    config = repo / ARCH / "config.pbtxt"
    assert 'key: "flip_tta" value: { string_value: "1" }' in config.read_text()
    if not in_model:  # a Triton whose model does not flip
        config.write_text(re.sub(r'(key: "flip_tta" value: \{ string_value: )"1"', r'\1"0"', config.read_text()))
    pixels = np.random.default_rng(7).integers(0, 256, (5, meta.input_size, meta.input_size, 3), dtype=np.uint8)
    alone, averaged = in_process(models / ARCH, meta, pixels)
    assert np.abs(alone - averaged).max() > 1e-3  # mirroring changes the answer: the checks below can tell
    triton = EmbeddedTriton(repo, tmp_path / "server", 0).start()
    backend = TritonBackend(triton.grpc_url, [ARCH], shared_memory=True).start()
    try:
        assert backend.served(ARCH) == ServedModel("UINT8", flips=in_model, file=meta.onnx_file())
        before = inference_count(backend)
        got = backend.infer(ARCH, pixels, timeout=10, flip=True).probabilities
        faces_run = inference_count(backend) - before
        plain = backend.infer(ARCH, pixels, timeout=10, flip=False).probabilities
    finally:
        backend.stop()
        triton.stop()
    np.testing.assert_allclose(got, averaged, atol=1e-5)
    assert faces_run == (5 if in_model else 10)  # each face sent once when the model mirrors it
    # flip=False asks for the faces alone; a model that flips anyway still answers with its average
    np.testing.assert_allclose(plain, averaged if in_model else alone, atol=1e-5)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_large"])  # an int8 file and a float one
def test_cluster_graph_takes_pixels_and_flips_inside(tmp_path, arch) -> None:
    """Triton's onnxruntime backend cannot run here; ONNX Runtime, which that backend embeds, runs
    the repository's model.onnx as it would."""
    shutil.copytree(PACK_DIR / arch, tmp_path / "models" / arch)
    meta = ModelMetadata.load(tmp_path / "models" / arch)
    build_repository(tmp_path / "models", tmp_path / "repo", "cluster", precision="auto")
    config = (tmp_path / "repo" / arch / "config.pbtxt").read_text()
    assert "data_type: TYPE_UINT8" in config and 'key: "flip_tta" value: { string_value: "1" }' in config
    session = ort.InferenceSession(str(tmp_path / "repo" / arch / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.name == "image" and graph_input.type == "tensor(uint8)"
    pixels = np.random.default_rng(11).integers(0, 256, (6, meta.input_size, meta.input_size, 3), dtype=np.uint8)
    _, averaged = in_process(tmp_path / "models" / arch, meta, pixels)
    np.testing.assert_allclose(session.run(None, {"image": pixels})[0], averaged, atol=1e-6)
    np.testing.assert_allclose(session.run(None, {"image": pixels[:1]})[0], averaged[:1], atol=1e-6)
    with pytest.raises(ValueError, match="not float32"):  # a serving graph is not wrapped twice
        serving_graph(tmp_path / "repo" / arch / "1" / "model.onnx", flip=True)


def test_litert_runtime_does_the_same_serving_steps(tmp_path) -> None:
    """The embedded model's other runtime (`--runtime litert`, the pack's fp16 TFLite file) gets the
    same pixels-in, flip-inside treatment: its answers match the ONNX model's flip average."""
    pytest.importorskip("ai_edge_litert")
    # A pack model whose edge file is fp16 and whose validation chose flip averaging, on faces where
    # the flip matters more than fp16's rounding (so the comparison below can tell them apart).
    # Random faces, ten draws per model (the pack changes: which draw the flip moves most depends on
    # the weights), the model and draw where it moves the answers most.
    candidates = []
    for meta in find_models(PACK_DIR):
        if meta.files.get("edge") != "model_fp16.tflite" or not meta.flip_tta or meta.input_size != 128:
            continue
        for seed in range(13, 23):
            pixels = np.random.default_rng(seed).integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
            alone, averaged = in_process(PACK_DIR / meta.architecture, meta, pixels, precision="float")
            candidates.append((float(np.abs(alone - averaged).max()), meta.architecture, seed))
    moved, arch, seed = max(candidates, default=(0.0, "", 0))
    if moved <= 0.05:
        pytest.fail("no pack model with an fp16 edge file whose flip averaging changes these answers")
    pixels = np.random.default_rng(seed).integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    _, averaged = in_process(PACK_DIR / arch, ModelMetadata.load(PACK_DIR / arch), pixels, precision="float")
    shutil.copytree(PACK_DIR / arch, tmp_path / "models" / arch)
    build_repository(tmp_path / "models", tmp_path / "repo", "embedded", runtime="litert")
    config = (tmp_path / "repo" / arch / "config.pbtxt").read_text()
    assert 'key: "source_file" value: { string_value: "model_fp16.tflite" }' in config
    triton = EmbeddedTriton(tmp_path / "repo", tmp_path / "server", 0).start()
    backend = TritonBackend(triton.grpc_url, [arch], shared_memory=True).start()
    try:
        assert backend.served(arch) == ServedModel("UINT8", flips=True, file="model_fp16.tflite")
        got = backend.infer(arch, pixels, timeout=10, flip=True)
    finally:
        backend.stop()
        triton.stop()
    assert got.model_file == "model_fp16.tflite"
    np.testing.assert_allclose(got.probabilities, averaged, atol=0.03)
