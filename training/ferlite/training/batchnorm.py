"""BatchNorm statistics measured again, so a model read back from the pack can train BatchNorm.

`onnx_weights` gives each BatchNorm layer its folded form (moving mean 0, variance 1 - epsilon): in
inference mode it computes `x * gamma + beta`, which is the shipped model. In training mode, though,
BatchNorm divides by the *batch's* statistics, which for these inputs are nowhere near (0, 1): the
first training step would change every layer's output at once, so such a model had to train with
BatchNorm frozen, and plateaued there (EfficientNetB0: ~0.614 validation over 8 epochs).

`recalibrate_batchnorm` measures each BatchNorm input's per-channel mean and variance on real faces
and rewrites (gamma, beta, mean, variance) so that inference computes exactly the same function as
before, while the moving statistics are now the data's: training-mode BatchNorm then starts from
what the model already computes instead of from a different network.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np

from .models import BACKBONE_LAYER, WeightsError

#: How far the recalibrated model's probabilities may move (inference mode, same images).
TOLERANCE = 1e-4


def batchnorm_layers(model) -> list:
    """The backbone's BatchNorm layers, in graph order."""
    return [layer for layer in model.get_layer(BACKBONE_LAYER).layers
            if isinstance(layer, keras.layers.BatchNormalization)]


def input_statistics(model, batches: Iterable[np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-channel (mean, variance) of each backbone BatchNorm layer's input over `batches` (the
    model's own input: size x size RGB in [0, 1]), accumulated in float64 one batch at a time."""
    layers = batchnorm_layers(model)
    for layer in layers:
        if layer.axis not in (-1, [-1], 3, [3]):
            raise WeightsError(f"{layer.name}: BatchNorm over axis {layer.axis}, only channels-last is supported")
    backbone = model.get_layer(BACKBONE_LAYER)
    probe = keras.Model(backbone.inputs, [layer.input for layer in layers])
    adapt = model.get_layer("input_adapt")
    sums = [None] * len(layers)
    squares = [None] * len(layers)
    count = 0
    for batch in batches:
        outputs = probe(adapt(np.asarray(batch, np.float32)), training=False)
        for i, out in enumerate(outputs):
            out = np.asarray(out, np.float64).reshape(-1, out.shape[-1])
            s, q = out.sum(axis=0), np.square(out).sum(axis=0)
            sums[i] = s if sums[i] is None else sums[i] + s
            squares[i] = q if squares[i] is None else squares[i] + q
        count += len(batch)
    if not count:
        raise ValueError("no images to measure BatchNorm statistics on")
    stats = {}
    for layer, s, q, out in zip(layers, sums, squares, probe.outputs, strict=True):
        pixels = count * int(np.prod(out.shape[1:-1]))
        mean = s / pixels
        stats[layer.name] = (mean, np.maximum(q / pixels - np.square(mean), 0.0))
    return stats


def recalibrate_batchnorm(model, batches: Iterable[np.ndarray], check: np.ndarray | None = None) -> int:
    """Give every backbone BatchNorm layer the statistics of its input on `batches`, keeping the
    function it computes in inference mode; return how many layers changed. With `check` (model
    inputs), raise WeightsError if the probabilities on them move by more than TOLERANCE."""
    before = None if check is None else np.asarray(model(check, training=False))
    stats = input_statistics(model, batches)
    for layer in batchnorm_layers(model):
        values = {w.name.split("/")[-1]: np.asarray(w.numpy(), np.float64) for w in layer.weights}
        if "gamma" not in values or "beta" not in values:
            raise WeightsError(f"{layer.name} has no scale or centre to absorb the new statistics")
        # It computes y = a * x + c; keep a and c with the measured mean and variance.
        a = values["gamma"] / np.sqrt(values["moving_variance"] + layer.epsilon)
        c = values["beta"] - a * values["moving_mean"]
        mean, variance = stats[layer.name]
        new = {"gamma": a * np.sqrt(variance + layer.epsilon), "beta": c + a * mean,
               "moving_mean": mean, "moving_variance": variance}
        layer.set_weights([new[w.name.split("/")[-1]].astype(np.float32) for w in layer.weights])
    if before is not None:
        gap = float(np.max(np.abs(np.asarray(model(check, training=False)) - before)))
        if gap > TOLERANCE:
            raise WeightsError(f"recalibrating BatchNorm changed the model's probabilities by up to {gap:.2e}")
    return len(stats)
