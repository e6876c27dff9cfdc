"""The cluster flavour's serving graph on tiny hand-built ONNX models, at the opsets on either side
of ReduceMean's change (axes an attribute up to opset 17, an input from 18): pixels in, the
shared preprocessing and flip averaging inside, exactly as done outside the graph."""

from __future__ import annotations

import numpy as np
import pytest

from ferlite.base import preprocess

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ferlite.services.classifier.serving_graph import serving_graph  # noqa: E402

SIZE = 16  # the smallest input ModelMetadata accepts
WEIGHTS = np.random.default_rng(0).normal(size=(SIZE * SIZE * 3, 7)).astype(np.float32)


def tiny_model(path, opset: int, batch_dependent: bool = False) -> None:
    """image float32 N x 16 x 16 x 3 -> flatten -> MatMul -> Softmax -> probs N x 7: not mirror
    symmetric, so flip averaging changes its answers. `batch_dependent`: the input is first centred
    on the batch's mean, so one face's answer depends on the rest of its batch."""
    centre = [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[0], keepdims=1),
              helper.make_node("Sub", ["image", "mean"], ["centred"])] if batch_dependent else []
    graph = helper.make_graph(
        [*centre, helper.make_node("Reshape", ["centred" if batch_dependent else "image", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 7])],
        [numpy_helper.from_array(np.array([-1, SIZE * SIZE * 3], np.int64), "shape"),
         numpy_helper.from_array(WEIGHTS, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8), str(path))


def reference(x: np.ndarray) -> np.ndarray:
    logits = x.reshape(len(x), -1) @ WEIGHTS
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("flip", [True, False])
def test_serving_graph_equals_the_steps_outside_it(tmp_path, opset, flip) -> None:
    tiny_model(tmp_path / "model.onnx", opset)
    wrapped = serving_graph(tmp_path / "model.onnx", flip)
    onnx.checker.check_model(wrapped)
    session = ort.InferenceSession(wrapped.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(1).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    x = preprocess.normalize(pixels)
    expected = (reference(x) + reference(preprocess.mirrored(x))) / 2 if flip else reference(x)
    assert np.abs(reference(x) - expected).max() > 1e-3 or not flip  # the flip matters for this model
    np.testing.assert_allclose(session.run(None, {"image": pixels})[0], expected, atol=1e-5)


def test_a_graph_that_is_not_a_float_classifier_is_refused(tmp_path) -> None:
    tiny_model(tmp_path / "model.onnx", 17)
    onnx.save(serving_graph(tmp_path / "model.onnx", True), str(tmp_path / "served.onnx"))
    with pytest.raises(ValueError, match="not float32"):
        serving_graph(tmp_path / "served.onnx", True)


def test_the_check_catches_a_graph_that_cannot_be_wrapped(tmp_path) -> None:
    """A network whose answer for one face depends on the rest of its batch (here: inputs centred
    on the batch mean) answers differently once the mirror images share its batch: the check that
    `ferlite triton-repo` runs before writing a model refuses it; a per-face network passes."""
    from ferlite.services.classifier.serving_graph import check

    tiny_model(tmp_path / "good.onnx", 17)
    assert check(tmp_path / "good.onnx", serving_graph(tmp_path / "good.onnx", True), True, SIZE) < 1e-5
    tiny_model(tmp_path / "bad.onnx", 17, batch_dependent=True)
    with pytest.raises(ValueError, match="differs from the model"):
        check(tmp_path / "bad.onnx", serving_graph(tmp_path / "bad.onnx", True), True, SIZE)
    # `ferlite triton-repo` refuses to write it, and says why
    from ferlite.base.model_metadata import ModelMetadata
    from ferlite.services.classifier.repository import main

    folder = tmp_path / "models" / "mobilenet_v2"
    folder.mkdir(parents=True)
    (tmp_path / "bad.onnx").rename(folder / "model.onnx")
    ModelMetadata("mobilenet_v2", SIZE, flip_tta=True, files={"onnx": "model.onnx"}).save(folder)
    assert main(["--models", str(tmp_path / "models"), "--out", str(tmp_path / "repo"), "--flavour", "cluster"]) == 2
    assert not (tmp_path / "repo" / "mobilenet_v2" / "1" / "model.onnx").exists()
