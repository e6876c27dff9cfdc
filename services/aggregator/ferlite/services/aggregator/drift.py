"""Accuracy-drift signals for Prometheus, per architecture and model version.

Three signals, because labels are rarely known live:
  (a) how far the predicted-class distribution over a sliding window of recent events has moved
      from the reference distribution that `ferlite export` measured on the validation split:
      population stability index (PSI) and Jensen–Shannon divergence (base 2, in [0, 1]);
  (b) mean confidence over the window next to the reference mean confidence (a model that
      becomes unsure on new faces is drifting even when its label mix looks normal);
  (c) rolling accuracy over the last teacher feedbacks (ground truth where there is some).

A PSI above 0.25 is the usual "significant shift" threshold; the Prometheus rules in deploy/ use
it. The windows and the feedback figures live in Redis (the store's `drift:*` and `feedback:*`
keys): every aggregator replica reports the same figures, whichever replica stored the events or
took the feedback; each refreshes its gauges from Redis every few seconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ferlite.base.events import Event
from ferlite.base.labels import INDEX, NUM_CLASSES
from ferlite.base.model_metadata import MetadataError, ModelMetadata
from ferlite.services.common.metrics import ServiceMetrics

log = logging.getLogger("ferlite.aggregator.drift")
EPS = 1e-4


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    a = np.clip(actual, EPS, None)
    e = np.clip(expected, EPS, None)
    a, e = a / a.sum(), e / e.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    p = np.clip(p, 0, None) / max(p.sum(), EPS)
    q = np.clip(q, 0, None) / max(q.sum(), EPS)
    m = (p + q) / 2

    def kl(x: np.ndarray, y: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / y[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


class DriftMonitor:
    def __init__(self, metrics: ServiceMetrics, model_dir: str | Path, window: int = 500) -> None:
        self.model_dir = Path(model_dir)
        self.window = window
        self._references: dict[str, dict | None] = {}
        self._versions: dict[str, str | None] = {}
        labels = ["architecture", "model_version"]
        self.g_psi = metrics.gauge("drift_psi", "PSI of recent predicted classes vs the export reference.", labels)
        self.g_js = metrics.gauge("drift_js_divergence", "Jensen-Shannon divergence (base 2) of recent "
                                  "predicted classes vs the export reference.", labels)
        self.g_conf = metrics.gauge("confidence_mean", "Mean confidence over the recent window.", labels)
        self.g_conf_ref = metrics.gauge("confidence_reference", "Mean confidence on the validation split "
                                        "at export time.", labels)
        self.g_window = metrics.gauge("drift_window_events", "Events in the drift window.", labels)
        self.g_acc = metrics.gauge("feedback_accuracy", "Accuracy over the last teacher feedbacks.", labels)
        self.g_fb = metrics.gauge("feedback_events", "Teacher feedbacks received (all time, from Redis).", labels)
        # No classroom label (per-classroom counts live in Redis, behind the token, not on an open
        # /metrics), and model_version only for loaded models: forged events cannot grow the series.
        self.c_events = metrics.counter("events_total", "Events stored, by predicted label.", ["label"])
        self.c_arm = metrics.counter("arm_events_total", "Events stored, by arm and predicted label.",
                                     ["architecture", "model_version", "label"])

    def reference(self, architecture: str) -> dict | None:
        if architecture not in self._references:
            path = self.model_dir / architecture
            ref = None
            try:
                ref = ModelMetadata.load(path).reference
                if len(ref["class_distribution"]) != NUM_CLASSES:
                    raise ValueError("the reference class distribution does not have seven classes")
            except (MetadataError, ValueError, KeyError) as exc:
                log.warning("no drift reference for %s at %s: %s", architecture, path, exc)
                ref = None
            self._references[architecture] = ref
        return self._references[architecture]

    def version_label(self, architecture: str, version: str) -> str:
        """`version` when it is the version of the model exported in model_dir, else "other"."""
        if architecture not in self._versions:
            try:
                self._versions[architecture] = str(ModelMetadata.load(self.model_dir / architecture).version)
            except MetadataError:
                self._versions[architecture] = None
        return version if version == self._versions[architecture] else "other"

    def observe(self, events: list[Event]) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """Count newly stored events; return what they add to each arm's shared window (the caller
        appends it in Redis, then calls `refresh`)."""
        added: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for e in events:
            version = self.version_label(e.architecture, e.model_version)
            added.setdefault((e.architecture, version), []).append((INDEX[e.label], e.confidence))
            self.c_events.labels(e.label).inc()
            self.c_arm.labels(e.architecture, version, e.label).inc()
        return added

    def refresh(self, windows: dict[tuple[str, str], list[tuple[int, float]]],
                feedback: dict[tuple[str, str], tuple[int, int, int]]) -> None:
        """Gauges from the shared windows and feedback figures (read from Redis)."""
        for (architecture, version), window in windows.items():
            if window and self.version_label(architecture, version) == version:
                self._update(architecture, version, window[:self.window])
        for (architecture, version), (total, hits, n) in feedback.items():
            self.feedback(architecture, version, total, hits, n)

    def _update(self, architecture: str, version: str, window: list[tuple[int, float]]) -> None:
        labels = np.array([w[0] for w in window])
        conf = np.array([w[1] for w in window])
        actual = np.bincount(labels, minlength=NUM_CLASSES) / len(labels)
        self.g_conf.labels(architecture, version).set(float(conf.mean()))
        self.g_window.labels(architecture, version).set(len(window))
        ref = self.reference(architecture)
        if ref is None:
            return
        expected = np.asarray(ref["class_distribution"], dtype=np.float64)
        self.g_psi.labels(architecture, version).set(psi(actual, expected))
        self.g_js.labels(architecture, version).set(js_divergence(actual, expected))
        self.g_conf_ref.labels(architecture, version).set(float(ref["mean_confidence"]))

    def feedback(self, architecture: str, version: str, total: int, recent_correct: int, recent_n: int) -> None:
        version = self.version_label(architecture, version)
        self.g_fb.labels(architecture, version).set(total)
        if recent_n:
            self.g_acc.labels(architecture, version).set(recent_correct / recent_n)
