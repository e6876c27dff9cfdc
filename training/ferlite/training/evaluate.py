"""Evaluate a trained model: Table 1's metrics, calibration, size, parameters and CPU latency."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ferlite.base.labels import EMOTIONS

from . import models
from .datasets import ImageSet
from .metrics import classification_report
from .train import predict, to_unit_float


def latency_ms_per_image(model: keras.Model, size: int, batch: int, repeats: int = 20) -> float:
    """Median CPU latency per image of the compiled model (not eager) at a batch size."""
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    x = to_unit_float(np.random.default_rng(0).integers(0, 255, (batch, size, size, 3), dtype=np.uint8))
    for _ in range(3):
        fn(x)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x).numpy()
        timings.append((time.perf_counter() - start) * 1000.0 / batch)
    return float(statistics.median(timings))


def evaluate_model(model: keras.Model, test_set: ImageSet, model_path: Path | None = None,
                   measure_latency: bool = True) -> dict:
    probs = predict(model, test_set.pixels, desc="evaluate")
    report = classification_report(test_set.labels, probs)
    arch = models.get(model.name) if model.name in models.REGISTRY else None
    size = int(model.input_shape[1])
    report.update({
        "architecture": model.name,
        "image_size": size,
        "params_total": int(model.count_params()),
        "params_backbone": models.backbone_params(model),
        "params_backbone_paper": arch.paper_backbone_params if arch else None,
        "size_bytes": model_path.stat().st_size if model_path and model_path.exists() else None,
    })
    if measure_latency:
        report["latency_ms_batch1"] = latency_ms_per_image(model, size, 1)
        report["latency_ms_batch8"] = latency_ms_per_image(model, size, 8, repeats=10)
    return report


def plot_confusion(report: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(report["confusion"])
    norm = np.array(report["confusion_normalised"])
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_title(f"{title}  (accuracy {report['accuracy']:.3f}, n={report['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_evaluation(report: dict, run_dir: Path, name: str = "evaluation") -> Path:
    path = run_dir / f"{name}.json"
    path.write_text(json.dumps(report, indent=1))
    (run_dir / f"{name}_confusion.json").write_text(json.dumps(
        {"labels": report["labels"], "counts": report["confusion"],
         "normalised": report["confusion_normalised"]}, indent=1))
    plot_confusion(report, run_dir / f"{name}_confusion.png", report.get("architecture", ""))
    return path
