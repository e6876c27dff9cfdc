"""Classification metrics in plain NumPy: what the paper reports, plus calibration.

Accuracy, cross-entropy loss, precision/recall/F1 (per class, macro, weighted), confusion matrix
(counts and row-normalised) and expected calibration error. Macro averages are taken over the
classes present in the ground truth, so a dataset without `neutral` (CK+) is not penalised for it.
"""

from __future__ import annotations

import itertools

import numpy as np

from ferlite.base.labels import EMOTIONS, NUM_CLASSES


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose most probable class is the label (or another model's label: agreement)."""
    return float((np.asarray(probs).argmax(1) == labels).mean())


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def classification_report(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Every figure of the paper's Table 1 and more, as a JSON-ready dict."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on zero images")
    y_pred = probs.argmax(axis=1)
    cm = confusion(y_true, y_pred)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        normalised = np.where(support[:, None] > 0, cm / support[:, None], 0.0)
    present = support > 0
    weights = support / support.sum()
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y_true)), y_true], eps, 1.0))))
    return {
        "n": len(y_true),
        "accuracy": float((y_pred == y_true).mean()),
        "loss": loss,
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "precision_weighted": float((precision * weights).sum()),
        "recall_weighted": float((recall * weights).sum()),
        "f1_weighted": float((f1 * weights).sum()),
        "ece": expected_calibration_error(probs, y_true),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(EMOTIONS)},
        "labels": list(EMOTIONS),
        "confusion": cm.tolist(),
        "confusion_normalised": np.round(normalised, 4).tolist(),
    }


def reference_profile(probs: np.ndarray, bins: int = 10) -> dict:
    """What a healthy model's output looks like, for the aggregator's drift metrics."""
    predicted = np.bincount(probs.argmax(axis=1), minlength=NUM_CLASSES) / max(1, len(probs))
    confidence = probs.max(axis=1)
    hist, edges = np.histogram(confidence, bins=bins, range=(0.0, 1.0))
    return {
        "class_distribution": [float(v) for v in predicted],
        "mean_probabilities": [float(v) for v in probs.mean(axis=0)],
        "mean_confidence": float(confidence.mean()),
        "confidence_histogram": {"edges": [float(e) for e in edges],
                                 "counts": [int(c) for c in hist]},
        "n": len(probs),
    }
