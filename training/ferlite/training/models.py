"""The four backbones of the paper as a registry, one builder each (as Keras applications are).

Every model built here takes float32 RGB in [0, 1] (the shared preprocessing's output) and
adapts it internally to what its backbone was trained on:

| architecture        | in-model input adaptation                  | backbone params (Table 1) |
|---------------------|--------------------------------------------|---------------------------|
| mobilenet_v2        | x * 2 - 1  (Keras preprocess_input: [-1,1]) | 2,257,984                 |
| mobilenet_v3_small  | x * 255, then the built-in Rescaling layer  |   939,120                 |
| mobilenet_v3_large  | x * 255, then the built-in Rescaling layer  | 2,996,352                 |
| efficientnet_b0     | x * 255, then built-in Rescaling+Normalize  | 4,049,571                 |

Head: global average pooling → dropout → Dense(7, softmax), `include_top=False` backbones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras

from ferlite.base.architectures import ARCHITECTURES, check_architecture
from ferlite.base.labels import NUM_CLASSES


@dataclass(frozen=True)
class Architecture:
    name: str
    display: str                     # the paper's name, for reports
    build_backbone: Callable[..., keras.Model]
    input_scale: float               # [0,1] input is multiplied by this...
    input_offset: float              # ...then this is added
    paper_backbone_params: int       # Table 1 of the paper


def _v2(shape, weights):
    return keras.applications.MobileNetV2(include_top=False, weights=weights, input_shape=shape)


def _v3s(shape, weights):
    return keras.applications.MobileNetV3Small(include_top=False, weights=weights, input_shape=shape,
                                               include_preprocessing=True)


def _v3l(shape, weights):
    return keras.applications.MobileNetV3Large(include_top=False, weights=weights, input_shape=shape,
                                               include_preprocessing=True)


def _b0(shape, weights):
    return keras.applications.EfficientNetB0(include_top=False, weights=weights, input_shape=shape)


REGISTRY: dict[str, Architecture] = {
    "mobilenet_v2": Architecture("mobilenet_v2", "MobileNetV2", _v2, 2.0, -1.0, 2_257_984),
    "mobilenet_v3_small": Architecture("mobilenet_v3_small", "MobileNetV3Small", _v3s, 255.0, 0.0, 939_120),
    "mobilenet_v3_large": Architecture("mobilenet_v3_large", "MobileNetV3Large", _v3l, 255.0, 0.0, 2_996_352),
    "efficientnet_b0": Architecture("efficientnet_b0", "EfficientNetB0", _b0, 255.0, 0.0, 4_049_571),
}
assert tuple(REGISTRY) == ARCHITECTURES

BACKBONE_LAYER = "backbone"


class WeightsError(ValueError):
    """The requested backbone weights cannot be loaded; the message says what to do instead."""


def get(name: str) -> Architecture:
    return REGISTRY[check_architecture(name)]


def build_backbone(name: str, size: int, weights: str = "imagenet") -> keras.Model:
    """The bare backbone. `weights`: "imagenet" (Keras download), "none", or a weights file path."""
    arch = get(name)
    shape = (size, size, 3)
    if weights == "none":
        backbone = arch.build_backbone(shape, None)
        # From scratch, BatchNorm's moving statistics start at (0, 1) and with Keras' momentum of
        # 0.99 lag far behind on small datasets, so validation sits at chance for many epochs.
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    elif weights == "imagenet":
        try:
            backbone = arch.build_backbone(shape, "imagenet")
        except Exception as exc:  # download failures surface as many exception types
            raise WeightsError(
                f"could not get ImageNet weights for {name} ({type(exc).__name__}: {exc}). Without "
                "network access pass --weights none, or --weights PATH to a backbone weights file "
                "(e.g. ~/.keras/models/*_notop.h5 copied from a machine that has it)") from exc
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path} (use imagenet, none or a file path)")
        backbone = arch.build_backbone(shape, None)
        try:
            backbone.load_weights(str(path))
        except Exception as exc:
            raise WeightsError(f"{path} does not fit the {name} backbone: {exc}") from exc
    backbone.name = BACKBONE_LAYER
    return backbone


def backbone_params(model: keras.Model) -> int:
    return int(model.get_layer(BACKBONE_LAYER).count_params())


def build_model(name: str, size: int = 224, weights: str = "imagenet", dropout: float = 0.3,
                num_classes: int = NUM_CLASSES) -> keras.Model:
    """[0,1] RGB input → input adaptation → backbone → pooling → dropout → softmax."""
    arch = get(name)
    backbone = build_backbone(name, size, weights)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(arch.input_scale, arch.input_offset, name="input_adapt")(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs, name=name)
    return model


def build_head(feature_dim: int, dropout: float, num_classes: int = NUM_CLASSES) -> keras.Model:
    """The classifier head alone, trained on cached backbone features in stage 1."""
    inputs = keras.Input((feature_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="dropout")(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="head")


def feature_extractor(model: keras.Model) -> keras.Model:
    """Image → pooled backbone features, sharing the model's layers."""
    return keras.Model(model.input, model.get_layer("pool").output, name=f"{model.name}_features")


def set_trainable_top(model: keras.Model, layers: int | None, freeze_batchnorm: bool = True) -> int:
    """Unfreeze the top `layers` backbone layers (None: all); return the trainable weight count.

    With pretrained weights BatchNorm stays frozen (inference mode), the usual practice when
    fine-tuning on small datasets. Training from scratch (`--weights none`) needs BatchNorm to
    learn its statistics, so `freeze_batchnorm=False` then."""
    backbone = model.get_layer(BACKBONE_LAYER)
    backbone.trainable = True
    cut = 0 if layers is None else max(0, len(backbone.layers) - layers)
    for i, layer in enumerate(backbone.layers):
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= cut and not (freeze_batchnorm and is_bn)
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


def save_weights_npz(model: keras.Model, path: Path) -> None:
    """All weights as one compressed NumPy file: smaller than `.weights.h5` and any backend can write
    it (the model pack's training machine runs Keras on PyTorch)."""
    import numpy as np

    np.savez_compressed(path, *model.get_weights())


def read_weights_npz(path: Path) -> list:
    """The arrays `save_weights_npz` wrote, in the model's order."""
    import numpy as np

    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def load_weights_npz(model: keras.Model, path: Path) -> None:
    weights = read_weights_npz(path)
    expected = len(model.get_weights())
    if len(weights) != expected:
        raise WeightsError(f"{path} holds {len(weights)} arrays; {model.name} has {expected}")
    model.set_weights(weights)
