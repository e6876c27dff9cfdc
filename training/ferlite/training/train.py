"""Two-stage transfer learning, as in the paper, made cheap enough for a CPU.

Stage 1 (frozen backbone): the backbone's pooled features are computed ONCE per image and
cached; the dropout+softmax head is trained on the cache. This costs one forward pass per image
instead of one per image per epoch. The head's weights are then copied into the full model.

Stage 2 (fine-tuning): the top N backbone layers (or all) are unfrozen, BatchNorm kept in
inference mode, and the whole model is trained on augmented images at a lower learning rate.

Both stages: categorical cross-entropy with label smoothing, AdamW or SGD, cosine decay or
ReduceLROnPlateau, early stopping on validation loss (best weights restored), optional balanced
class weights, TensorBoard logs and checkpoints. An interrupted run resumes when the same command
is run again: stage 1 is skipped once its head is saved, stage 2 continues from its last epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from ferlite.base.labels import NUM_CLASSES

from . import models
from .augment import AugmentConfig, augmenter
from .datasets import ImageSet

log = logging.getLogger("ferlite.training.train")


@dataclass(frozen=True)
class TrainConfig:
    architecture: str
    image_size: int = 224
    weights: str = "imagenet"
    dropout: float = 0.3
    batch_size: int = 32
    head_epochs: int = 20
    finetune_epochs: int = 10
    finetune_layers: int | None = 40   # top backbone layers to unfreeze; None = all
    optimizer: str = "adamw"           # adamw | sgd
    head_lr: float = 1e-3
    finetune_lr: float = 1e-4
    weight_decay: float = 1e-4
    schedule: str = "cosine"           # cosine | plateau
    label_smoothing: float = 0.1
    patience: int = 5
    class_weights: bool = False
    augment: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        models.get(self.architecture)
        if self.optimizer not in {"adamw", "sgd"}:
            raise ValueError(f"optimizer must be adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in {"cosine", "plateau"}:
            raise ValueError(f"schedule must be cosine or plateau, got {self.schedule!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.batch_size < 1 or self.head_epochs < 0 or self.finetune_epochs < 0:
            raise ValueError("batch_size must be >= 1 and epochs >= 0")


def to_unit_float(pixels: tf.Tensor) -> tf.Tensor:
    """The TensorFlow twin of preprocess.normalize (x / 255, float32), for tf.data pipelines."""
    return tf.cast(pixels, tf.float32) / 255.0


def one_hot(labels: np.ndarray) -> np.ndarray:
    return keras.utils.to_categorical(labels, NUM_CLASSES).astype("float32")


def balanced_class_weights(labels: np.ndarray) -> dict[int, float]:
    counts = np.bincount(labels, minlength=NUM_CLASSES)
    present = counts > 0
    weights = np.zeros(NUM_CLASSES)
    weights[present] = labels.size / (present.sum() * counts[present])
    return {i: float(w) for i, w in enumerate(weights)}


def image_dataset(data: ImageSet, batch: int, *, shuffle: bool, augment: keras.Sequential | None,
                  seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((data.pixels, one_hot(data.labels)))
    if shuffle:
        ds = ds.shuffle(min(len(data.samples), 10_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch).map(lambda x, y: (to_unit_float(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None:
        ds = ds.map(lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def predict(model: keras.Model, pixels: np.ndarray, batch: int = 64, desc: str = "predict") -> np.ndarray:
    """Run `model` over uint8 faces in batches with a progress bar (compiled, not eager)."""
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = []
    for start in tqdm(range(0, len(pixels), batch), desc=desc, unit="batch", leave=False):
        out.append(fn(to_unit_float(pixels[start:start + batch])).numpy())
    return np.concatenate(out) if out else np.zeros((0,))


def _optimizer(config: TrainConfig, lr: float, epochs: int, steps: int) -> keras.optimizers.Optimizer:
    rate: float | keras.optimizers.schedules.LearningRateSchedule = lr
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, epochs * steps), alpha=0.01)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=config.weight_decay)
    return keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)


def _callbacks(config: TrainConfig, run_dir: Path, stage: str) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup" / stage)),
        keras.callbacks.EarlyStopping("val_loss", patience=config.patience, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoints" / f"{stage}_best.weights.h5"),
                                        monitor="val_loss", save_best_only=True, save_weights_only=True),
        keras.callbacks.TensorBoard(str(run_dir / "tensorboard" / stage), write_graph=False),
        keras.callbacks.CSVLogger(str(run_dir / f"history_{stage}.csv"), append=True),
    ]
    if config.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.2,
                                                           patience=max(1, config.patience // 2)))
    return callbacks


def _verbosity() -> int:
    """Keras progress bars on a terminal, one line per epoch in logs and CI."""
    return 1 if sys.stderr.isatty() else 2


def _history(fit: keras.callbacks.History | None) -> dict[str, list[float]]:
    if fit is None:
        return {}
    return {k: [float(v) for v in vals] for k, vals in fit.history.items()}


def _load_state(run_dir: Path, config: TrainConfig) -> dict:
    state_path = run_dir / "state.json"
    if not state_path.exists():
        return {}
    state = json.loads(state_path.read_text())
    if state.get("config") != _config_dict(config):
        raise ValueError(f"{run_dir} holds a run with different settings; choose another --out "
                         "or pass --overwrite")
    return state


def _config_dict(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _save_state(run_dir: Path, state: dict) -> None:
    (run_dir / "state.json").write_text(json.dumps(state, indent=1))


def train(config: TrainConfig, train_set: ImageSet, val_set: ImageSet, run_dir: Path) -> keras.Model:
    """Train one architecture; writes model.keras, history.json and logs into `run_dir`."""
    keras.utils.set_random_seed(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = _load_state(run_dir, config) or {"config": _config_dict(config)}
    _save_state(run_dir, state)
    model = models.build_model(config.architecture, config.image_size, config.weights, config.dropout)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    class_weight = balanced_class_weights(train_set.labels) if config.class_weights else None
    history: dict[str, dict[str, list[float]]] = state.get("history", {})

    head_path = run_dir / "head.weights.h5"
    if config.head_epochs and not state.get("head_done"):
        log.info("stage 1: caching backbone features (one forward pass per image)")
        extractor = models.feature_extractor(model)
        train_feats = predict(extractor, train_set.pixels, desc="features/train")
        val_feats = predict(extractor, val_set.pixels, desc="features/val")
        head = models.build_head(train_feats.shape[1], config.dropout)
        steps = math.ceil(len(train_feats) / config.batch_size)
        head.compile(_optimizer(config, config.head_lr, config.head_epochs, steps), loss, metrics=["accuracy"])
        fit = head.fit(train_feats, one_hot(train_set.labels), batch_size=config.batch_size,
                       epochs=config.head_epochs, validation_data=(val_feats, one_hot(val_set.labels)),
                       class_weight=class_weight, callbacks=_callbacks(config, run_dir, "head"), verbose=_verbosity())
        head.save_weights(str(head_path))
        history["head"] = _history(fit)
        state.update(head_done=True, history=history)
        _save_state(run_dir, state)
    if head_path.exists():
        head = models.build_head(model.get_layer("pool").output.shape[-1], config.dropout)
        head.load_weights(str(head_path))
        model.get_layer("probs").set_weights(head.get_layer("probs").get_weights())

    if config.finetune_epochs and not state.get("finetune_done"):
        trainable = models.set_trainable_top(model, config.finetune_layers,
                                             freeze_batchnorm=config.weights != "none")
        log.info("stage 2: fine-tuning %s backbone layers (%d trainable weights)",
                 "all" if config.finetune_layers is None else config.finetune_layers, trainable)
        aug = augmenter(AugmentConfig(), seed=config.seed) if config.augment else None
        train_ds = image_dataset(train_set, config.batch_size, shuffle=True, augment=aug, seed=config.seed)
        val_ds = image_dataset(val_set, config.batch_size, shuffle=False, augment=None, seed=config.seed)
        steps = math.ceil(len(train_set.samples) / config.batch_size)
        model.compile(_optimizer(config, config.finetune_lr, config.finetune_epochs, steps), loss,
                      metrics=["accuracy"])
        fit = model.fit(train_ds, epochs=config.finetune_epochs, validation_data=val_ds,
                        class_weight=class_weight, callbacks=_callbacks(config, run_dir, "finetune"),
                        verbose=_verbosity())
        history["finetune"] = _history(fit)
        state.update(finetune_done=True, history=history)
        _save_state(run_dir, state)
    elif state.get("finetune_done") and (run_dir / "model.keras").exists():
        model = keras.models.load_model(run_dir / "model.keras")

    model.save(run_dir / "model.keras")
    (run_dir / "history.json").write_text(json.dumps(history, indent=1))
    return model
