"""The exported ONNX graph wrapped with the serving steps, for Triton's native onnxruntime backend.

The embedded Triton's Python model normalises pixels and averages each face with its mirror image
in NumPy (triton_model.py). The official container's onnxruntime backend runs only a graph, so for
the cluster flavour the same steps go into the graph itself:

    image uint8 N x S x S x 3 -> Cast -> Div 255           (ferlite.base.preprocess.normalize)
        [flip] -> Concat(x, Slice(x, width reversed))     (ferlite.base.preprocess.mirrored)
        -> the exported network -> probabilities 2N x 7
        [flip] -> Reshape 2 x N x 7 -> ReduceMean         (each face with its mirror image)
    probs N x 7

So a Classify call sends a remote Triton uint8 pixels, each face once: 8 faces of 128 px are 393 KB
on the wire instead of 3.1 MB of mirrored float32. tests/service/test_served_model.py checks the
wrapped graph against the shared preprocessing and the bare graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREFIX = "ferlite_serving/"


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def serving_graph(path: str | Path, flip: bool) -> onnx.ModelProto:
    """The graph at `path` taking uint8 pixels (input "image") and, with `flip`, answering each face
    with the mean of its own and its mirror image's probabilities (output unchanged, "probs")."""
    model = onnx.load(str(path))
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"{path}: expected one input and one output, found {len(graph.input)} and "
                         f"{len(graph.output)}")
    source, output = graph.input[0], graph.output[0]
    if source.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise ValueError(f"{path}: input {source.name!r} is not float32 (already a serving graph?)")
    dims = [d.dim_value or d.dim_param for d in source.type.tensor_type.shape.dim]
    network_input = PREFIX + "network_input"
    network_output = PREFIX + "network_output" if flip else output.name
    # the network reads `network_input` instead of the graph input, and writes `network_output`
    for node in graph.node:
        node.input[:] = [network_input if name == source.name else name for name in node.input]
        node.output[:] = [network_output if name == output.name else name for name in node.output]

    def const(name: str, value) -> str:
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), PREFIX + name))
        return PREFIX + name

    scaled = PREFIX + "scaled" if flip else network_input
    before = [helper.make_node("Cast", ["image"], [PREFIX + "float"], to=TensorProto.FLOAT),
              helper.make_node("Div", [PREFIX + "float", const("255", np.float32(255.0))], [scaled])]
    after = []
    if flip:
        width = [const("start", [-1]), const("end", [np.iinfo(np.int64).min]), const("axis", [2]),
                 const("step", [-1])]
        before += [helper.make_node("Slice", [scaled, *width], [PREFIX + "mirrored"]),
                   helper.make_node("Concat", [scaled, PREFIX + "mirrored"], [network_input], axis=0)]
        classes = output.type.tensor_type.shape.dim[-1].dim_value
        pairs = PREFIX + "pairs"
        after.append(helper.make_node("Reshape", [network_output, const("pairs_shape", [2, -1, classes])], [pairs]))
        if _opset(model) >= 18:  # ReduceMean's axes became an input
            after.append(helper.make_node("ReduceMean", [pairs, const("mean_axes", [0])], [output.name], keepdims=0))
        else:
            after.append(helper.make_node("ReduceMean", [pairs], [output.name], axes=[0], keepdims=0))
    nodes = [*before, *graph.node, *after]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.input.remove(source)
    # The network's batch symbol (in its value_info too) now counts faces and their mirror images:
    # the pixels' batch gets a name of its own.
    graph.input.append(helper.make_tensor_value_info("image", TensorProto.UINT8, ["faces", *dims[1:]]))
    graph.output[0].type.tensor_type.shape.dim[0].dim_param = "faces"  # one answer a face, mirrored or not
    return model


def check(path: str | Path, served: onnx.ModelProto, flip: bool, size: int, tolerance: float = 1e-4) -> float:
    """Run the serving graph and the graph at `path` in ONNX Runtime on a few random faces and
    return the largest difference from the steps done outside the graph; ValueError beyond
    `tolerance`. `ferlite triton-repo` runs this before writing a model, so a graph this module
    does not wrap correctly (another exporter, another opset) fails the build, not the answers."""
    import onnxruntime as ort

    from ferlite.base import preprocess

    pixels = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = preprocess.normalize(pixels)
    name = bare.get_inputs()[0].name
    expected = bare.run(None, {name: x})[0]
    if flip:
        expected = (expected + bare.run(None, {name: preprocess.mirrored(x)})[0]) / 2
    wrapped = ort.InferenceSession(served.SerializeToString(), providers=["CPUExecutionProvider"])
    got = wrapped.run(None, {"image": pixels})[0]
    if got.shape != expected.shape:
        raise ValueError(f"{path}: the serving graph answers {got.shape}, the model {expected.shape}")
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:
        raise ValueError(f"{path}: the serving graph differs from the model by {diff:.2g} (> {tolerance})")
    return diff
