"""Knowledge distillation for the architectures that have no ImageNet weights here.

A teacher (the ImageNet-initialised models, flip-averaged) scores every training image ONCE; its
probabilities, softened at temperature T, are cached beside the labels. The student is trained on

    loss = alpha * CE(label-smoothed one-hot, p_student)
         + (1 - alpha) * T^2 * KL(softmax(log p_teacher / T) || softmax(log p_student / T))

(Hinton et al., 2015; T^2 keeps the soft term's gradients on the scale of the hard term's).
Targets travel as one array, `[one-hot | soft teacher]`, so plain `model.fit` trains a student on
any Keras backend. Written with `keras.ops` only: no TensorFlow import.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ferlite.base.model_metadata import apply_temperature

EPS = 1e-7


def soften(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) row-wise: the teacher's distribution at temperature T (float32); the same
    arithmetic as serving's calibration."""
    return apply_temperature(np.asarray(probs, dtype=np.float32), temperature)


def choose_ensemble(val_probs: dict[str, np.ndarray], labels: np.ndarray) -> tuple[tuple[str, ...], dict]:
    """The teacher: of every non-empty subset of the models, the one whose mean probabilities are
    most accurate on VALIDATION (ties: fewer models, then the order given). Returns it and each
    subset's accuracy."""
    import itertools

    from .metrics import accuracy

    names = list(val_probs)
    scores = {}
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            scores[combo] = accuracy(np.mean([val_probs[a] for a in combo], axis=0), labels)
    best = max(scores, key=lambda c: (scores[c], -len(c)))
    return best, scores


def targets(one_hot: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """The `[one-hot | soft teacher]` target array `distillation_loss` reads."""
    if one_hot.shape != soft.shape:
        raise ValueError(f"one-hot {one_hot.shape} and teacher {soft.shape} targets differ in shape")
    return np.concatenate([one_hot, soft], axis=1).astype(np.float32)


def distillation_loss(num_classes: int, alpha: float = 0.5, temperature: float = 2.0,
                      label_smoothing: float = 0.1):
    """A Keras loss over `[one-hot | soft teacher]` targets and the student's softmax output."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    hard_loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)

    def loss(y_true, y_pred):
        hard, soft = y_true[:, :num_classes], y_true[:, num_classes:]
        ce = hard_loss(hard, y_pred)
        log_student = ops.log_softmax(ops.log(ops.clip(y_pred, EPS, 1.0)) / temperature, axis=-1)
        kl = ops.sum(soft * (ops.log(ops.clip(soft, EPS, 1.0)) - log_student), axis=-1)
        return alpha * ce + (1.0 - alpha) * temperature * temperature * kl

    loss.__name__ = "distillation_loss"
    return loss
