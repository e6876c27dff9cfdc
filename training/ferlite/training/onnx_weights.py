"""Keras weights from a shipped ONNX model, so training can continue from the model pack.

The pack keeps only ONNX (and TFLite) files: Keras weights would double its size. tf2onnx folded
most BatchNorm layers into the convolution before them (weights scaled, BN's offset as the conv's
bias) and wrote the rest as a Mul and an Add; the weights are stored as float16 behind Cast nodes.
Each ONNX tensor still carries the Keras layer's name in its TensorFlow scope (`stem_conv_1`,
`block1a_bn_1`, ...), which is how a tensor finds its layer here. A BatchNorm layer receives its
folded form exactly: scale as gamma, offset as beta, moving mean 0 and moving variance 1 - epsilon,
so that it computes `x * scale + offset`. Its statistics are therefore gone: train such a model
with BatchNorm frozen (inference mode); `load_onnx_weights` checks the result against the ONNX
model on random images and refuses a mismatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from .models import BACKBONE_LAYER, WeightsError

#: How far the imported model's probabilities may be from the ONNX model's on the same images.
TOLERANCE = 2e-3


@dataclass
class _Found:
    """What the ONNX graph holds for one Keras layer."""

    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    sources: list[str] = field(default_factory=list)


def _layers(model) -> dict[str, object]:
    """The model's layers by name, the backbone's included."""
    found = {layer.name: layer for layer in model.layers}
    if BACKBONE_LAYER in found:
        found.update({layer.name: layer for layer in found[BACKBONE_LAYER].layers})
    return found


def _layer_of(tensor: str, names: set[str]) -> str | None:
    """The Keras layer a TensorFlow-scoped tensor or node name belongs to: a path component that is a
    layer's name plus TensorFlow's `_N` suffix (required, so `x_1` is layer `x`, not `x_1`), the
    innermost such component."""
    for part in reversed(tensor.split("/")):
        match = re.fullmatch(r"(.+)_\d+", part)
        if match and match.group(1) in names:
            return match.group(1)
    return None


def _constants(graph) -> dict[str, np.ndarray]:
    """Every initializer as float32, also under the name of the Cast node that reads it."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]]
    return {name: np.asarray(value, dtype=np.float32) for name, value in values.items()}


def _producers(layers: dict[str, object]) -> dict[str, str]:
    """Each BatchNorm layer's input layer: where tf2onnx folded a BatchNorm into a convolution whose
    weight lost its name (constant-folded) and whose node is `Conv__N`, the bias still names the
    BatchNorm, and through it the convolution."""
    found = {}
    for name, layer in layers.items():
        if isinstance(layer, keras.layers.BatchNormalization):
            history = getattr(layer.input, "_keras_history", None)
            if history is not None:
                found[name] = history[0].name
    return found


def _collect(graph, names: set[str], producers: dict[str, str]) -> dict[str, _Found]:
    consts = _constants(graph)
    found: dict[str, _Found] = {}

    def put(layer: str | None, what: str, value: np.ndarray, source: str) -> None:
        if layer is None:
            return
        entry = found.setdefault(layer, _Found())
        if getattr(entry, what) is not None:
            raise WeightsError(f"two ONNX tensors give {layer}'s {what} ({entry.sources[-1]}, {source})")
        setattr(entry, what, value)
        entry.sources.append(source)

    for node in graph.node:
        inputs = list(node.input)
        if node.op_type == "Conv":
            weight = inputs[1]
            layer = _layer_of(weight, names) if weight not in consts or "/" in weight else None
            layer = layer or _layer_of(node.name, names)
            bias_layer = _layer_of(inputs[2], names) if len(inputs) > 2 and inputs[2] else None
            layer = layer or producers.get(bias_layer or "")
            put(layer, "kernel", _conv_kernel(consts[weight], node), weight)
            if bias_layer is not None:
                # A bias named after a BatchNorm layer is that layer, folded into this conv.
                put(bias_layer, "offset" if bias_layer != layer else "bias", consts[inputs[2]], inputs[2])
        elif node.op_type == "MatMul" and inputs[1] in consts:
            put(_layer_of(node.name, names), "kernel", consts[inputs[1]], inputs[1])
        elif node.op_type in ("Mul", "Add") and "batchnorm" in node.name:
            value = next((consts[i] for i in inputs if i in consts), None)
            if value is not None:
                what = "scale" if node.op_type == "Mul" else "offset"
                put(_layer_of(node.name, names), what, value, node.name)
        elif node.op_type == "Add" and node.name.endswith("BiasAdd"):
            value = next((consts[i] for i in inputs if i in consts), None)
            if value is not None:
                put(_layer_of(node.name, names), "bias", value, node.name)
    return found


def _conv_kernel(weight: np.ndarray, node) -> np.ndarray:
    """ONNX (out, in / group, kh, kw) as Keras' (kh, kw, in, out), or (kh, kw, in, multiplier) for
    a depthwise convolution (group == in)."""
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if group > 1 and weight.shape[1] == 1:
        out, _, kh, kw = weight.shape
        return weight.reshape(group, out // group, kh, kw).transpose(2, 3, 0, 1)
    return weight.transpose(2, 3, 1, 0)


def _assign(layer, entry: _Found) -> None:
    shapes = [tuple(w.shape) for w in layer.weights]
    if isinstance(layer, keras.layers.BatchNormalization):
        if entry.offset is None:
            raise WeightsError(f"no ONNX tensor gives {layer.name}'s offset")
        channels = shapes[0][0]
        scale = np.ones(channels, np.float32) if entry.scale is None else entry.scale.reshape(channels)
        values = {"gamma": scale, "beta": entry.offset.reshape(channels),
                  "moving_mean": np.zeros(channels, np.float32),
                  "moving_variance": np.full(channels, 1.0 - layer.epsilon, np.float32)}
        layer.set_weights([values[w.name.split("/")[-1]] for w in layer.weights])
        return
    if entry.kernel is None:
        raise WeightsError(f"no ONNX tensor gives {layer.name}'s kernel")
    weights = [entry.kernel.reshape(shapes[0])]
    if len(shapes) > 1:
        if entry.bias is None:
            raise WeightsError(f"no ONNX tensor gives {layer.name}'s bias")
        weights.append(entry.bias.reshape(shapes[1]))
    layer.set_weights(weights)


def load_onnx_weights(model, onnx_path: Path, check_images: int = 8, seed: int = 0) -> int:
    """Set `model`'s weights from `onnx_path` (an export of the same architecture and input size);
    return how many layers were set. Raises WeightsError when a layer finds no tensor, a tensor no
    layer, or the imported model's probabilities differ from the ONNX model's by more than
    TOLERANCE on `check_images` random images."""
    import onnx

    layers = _layers(model)
    with_weights = {name: layer for name, layer in layers.items()
                    if layer.weights and not isinstance(layer, keras.Model)
                    and isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                           keras.layers.Dense, keras.layers.BatchNormalization))}
    found = _collect(onnx.load(str(onnx_path)).graph, set(with_weights), _producers(layers))
    missing = sorted(set(with_weights) - set(found))
    if missing:
        raise WeightsError(f"{onnx_path} has no weights for {len(missing)} layers of {model.name} "
                           f"(first: {', '.join(missing[:3])}); is it the same architecture?")
    for name, layer in with_weights.items():
        try:
            _assign(layer, found[name])
        except ValueError as exc:
            raise WeightsError(f"{onnx_path}: {name} does not fit: {exc}") from exc
    _check(model, onnx_path, check_images, seed)
    return len(with_weights)


def _check(model, onnx_path: Path, images: int, seed: int) -> None:
    from .export import onnx_runner

    size = model.input_shape[1]
    x = np.random.default_rng(seed).random((images, size, size, 3), dtype=np.float32)
    expected = onnx_runner(onnx_path)(x)
    got = np.asarray(model(x, training=False))
    gap = float(np.max(np.abs(expected - got)))
    if gap > TOLERANCE:
        raise WeightsError(f"the weights from {onnx_path} do not reproduce it: probabilities differ by "
                           f"up to {gap:.4f} (tolerance {TOLERANCE})")
