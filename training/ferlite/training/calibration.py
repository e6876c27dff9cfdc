"""Calibration and abstention, fitted on the validation split only (NumPy, no TensorFlow).

Temperature scaling (Guo et al., 2017): one scalar T with calibrated p = softmax(log p / T),
chosen to minimise validation negative log-likelihood. It never changes the predicted label, only
how confident the model claims to be, which is what the "uncertain" threshold reads.

Abstention: a face is reported "uncertain" when its calibrated confidence is below a threshold.
The threshold is the highest one that still keeps at least `min_coverage` of validation faces,
so the kept predictions are as accurate as possible while most faces still get a label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ferlite.base.model_metadata import apply_temperature


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(picked).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.25, 8] that minimises NLL: a log-spaced grid, then a finer grid around the best."""
    if len(labels) == 0:
        raise ValueError("cannot fit a temperature on zero images")
    grid = np.geomspace(0.25, 8.0, 61)
    best = min(grid, key=lambda t: nll(apply_temperature(probs, t), labels))
    fine = np.geomspace(best / 1.06, best * 1.06, 25)
    return float(round(min(fine, key=lambda t: nll(apply_temperature(probs, t), labels)), 4))


@dataclass(frozen=True)
class Abstention:
    threshold: float
    coverage: float              # share of faces kept (confidence >= threshold)
    selective_accuracy: float    # accuracy on the kept faces
    accuracy: float              # accuracy on all faces

    def as_dict(self) -> dict:
        return {"threshold": self.threshold, "coverage": self.coverage,
                "selective_accuracy": self.selective_accuracy, "accuracy": self.accuracy}


def selective(probs: np.ndarray, labels: np.ndarray, threshold: float) -> Abstention:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    kept = confidence >= threshold
    return Abstention(float(threshold), float(kept.mean()),
                      float(correct[kept].mean()) if kept.any() else 0.0, float(correct.mean()))


def choose_threshold(probs: np.ndarray, labels: np.ndarray, min_coverage: float = 0.8) -> Abstention:
    """The highest confidence threshold (2 decimals) keeping at least `min_coverage` of the faces."""
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    confidence = np.sort(probs.max(axis=1))
    cut = confidence[int(np.floor((1.0 - min_coverage) * len(confidence)))]
    threshold = float(np.floor(cut * 100) / 100)
    return selective(probs, labels, threshold)
