"""The classifier's logic, free of gRPC: validate crops, route by policy, infer, shadow, measure."""

from __future__ import annotations

import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ferlite.base import preprocess
from ferlite.base.event_rules import shown
from ferlite.base.labels import EMOTIONS
from ferlite.base.model_metadata import ModelMetadata
from ferlite.services.common.metrics import ServiceMetrics

from .backend import BackendUnavailable, Inference, TritonBackend
from .policy import ABPolicy, PolicyStore, choose

log = logging.getLogger("ferlite.classifier")

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONFIDENCE_BUCKETS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class InvalidInput(ValueError):
    pass


class Unavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class ArmResult:
    architecture: str
    model_version: str
    probabilities: np.ndarray      # calibrated (temperature from the model's metadata)
    latency_ms: float
    abstain_below: float = 0.0     # the model's validated abstention threshold

    @property
    def uncertain(self) -> np.ndarray:
        return self.probabilities.max(axis=1) < self.abstain_below


def resize_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Crops resized to the model's own input size (each model owns its size; face detection
    crops at the largest served size), with the shared preprocessing's resize rule."""
    if batch.shape[1:3] == (size, size):
        return batch
    return np.stack([preprocess.resize(crop, size) for crop in batch])


@dataclass(frozen=True)
class Classification:
    primary: ArmResult
    shadow: list[ArmResult]


def decode_crops(crops: list[tuple[int, int, int, str, bytes]], max_batch: int) -> np.ndarray:
    """(height, width, channels, dtype, data) tuples -> N x H x W x 3: uint8 pixels when every crop
    is uint8 (they stay uint8 up to the model, a quarter of the bytes through Triton), else float32
    in [0, 1]."""
    if not crops:
        raise InvalidInput("crops: the batch is empty")
    if len(crops) > max_batch:
        raise InvalidInput(f"crops: {len(crops)} crops exceed the limit of {max_batch} per call")
    shape = crops[0][:3]
    out = []
    for i, (h, w, c, dtype, data) in enumerate(crops):
        if (h, w, c) != shape:
            first = "x".join(map(str, shape))
            raise InvalidInput(f"crops[{i}]: shape {h}x{w}x{c} differs from crops[0] ({first})")
        if c != 3 or h <= 0 or w <= 0:
            raise InvalidInput(f"crops[{i}]: shape {h}x{w}x{c}; expected HxWx3 RGB")
        if dtype not in ("float32", "uint8"):
            raise InvalidInput(f"crops[{i}]: dtype must be FLOAT32 or UINT8")
        itemsize = 4 if dtype == "float32" else 1
        if len(data) != h * w * c * itemsize:
            expected = h * w * c * itemsize
            raise InvalidInput(f"crops[{i}]: {len(data)} bytes, expected {expected} for {h}x{w}x{c} {dtype}")
        array = np.frombuffer(data, dtype="<f4" if dtype == "float32" else np.uint8).reshape(h, w, c)
        if dtype == "float32" and (not np.isfinite(array).all() or array.min() < 0.0 or array.max() > 1.0):
            raise InvalidInput(f"crops[{i}]: float32 values must be finite and in [0, 1]")
        out.append(array)
    if len({a.dtype for a in out}) > 1:  # a mixed batch: all as the model's float input
        out = [preprocess.normalize(a) if a.dtype == np.uint8 else a for a in out]
    return np.stack(out)


class Classifier:
    def __init__(self, backend: TritonBackend, policies: PolicyStore, metadata: dict[str, ModelMetadata],
                 metrics: ServiceMetrics, max_batch: int = 64, timeout: float = 5.0, seed: int = 0,
                 min_val_accuracy: float = 0.0) -> None:
        self.backend = backend
        self.policies = policies
        self.metadata = metadata  # architecture -> its exported model's metadata: the served arms
        self.input_sizes = {a: m.input_size for a, m in metadata.items()}  # each model owns its size
        # Quality gate: an arm whose validation accuracy is below the floor never takes traffic.
        self.gated = {a for a, m in self.metadata.items()
                      if m.val_accuracy is None or m.val_accuracy < min_val_accuracy}
        for arch in sorted(self.gated):
            log.warning("quality gate: %s is not served (validation accuracy %s < floor %.3f)", arch,
                        self.metadata[arch].val_accuracy, min_val_accuracy)
        self.max_batch = max_batch
        self.timeout = timeout
        self._calibrations: dict[tuple[str, str], ModelMetadata] = {}
        self.rng = random.Random(seed or None)
        self._shadow_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shadow")
        arm = ["architecture", "model_version"]
        self.h_latency = metrics.histogram("inference_duration_seconds", "Triton round trip per call, by arm.", arm)
        self.h_batch = metrics.histogram("batch_size", "Crops per Classify call, by arm.", ["architecture"],
                                         buckets=BATCH_BUCKETS)
        self.c_errors = metrics.counter("inference_errors_total", "Failed inferences, by arm and reason.",
                                        ["architecture", "reason"])
        self.c_pred = metrics.counter("predictions_total", "Predicted labels, by arm.", [*arm, "label"])
        self.h_conf = metrics.histogram("confidence", "Confidence of each prediction, by arm (mean = sum/count).",
                                        arm, buckets=CONFIDENCE_BUCKETS)
        self.c_shadow = metrics.counter("shadow_agreement_total", "Shadow predictions that agree (or not) with "
                                        "the answering arm, by shadow arm.", ["architecture", "agree"])
        self.g_ready = metrics.gauge("arm_ready", "1 when the architecture is ready on Triton.", ["architecture"])
        self.g_weight = metrics.gauge("ab_weight", "Normalised A/B weight of each architecture.", ["architecture"])
        self.g_gated = metrics.gauge("arm_gated", "1 when the quality gate keeps the architecture from traffic "
                                     "(validation accuracy below the floor).", ["architecture"])
        for arch in self.input_sizes:
            self.g_gated.labels(arch).set(1 if arch in self.gated else 0)
        self.publish_policy(policies.policy)

    def publish_policy(self, policy: ABPolicy) -> None:
        weights = {a: w for a, w in policy.weights.items() if a in self.input_sizes and a not in self.gated}
        total = sum(weights.values()) or 1.0
        for arch in self.input_sizes:
            self.g_weight.labels(arch).set(weights.get(arch, 0.0) / total)

    def publish_ready(self, ready: set[str]) -> None:
        for arch in self.input_sizes:
            self.g_ready.labels(arch).set(1 if arch in ready else 0)

    def calibration(self, arch: str, served_file: str) -> ModelMetadata:
        """The metadata to calibrate with when Triton serves `served_file` of `arch`'s folder: the int8
        file has its own temperature and abstention threshold (ModelMetadata.for_file)."""
        key = (arch, served_file)
        known = self._calibrations.get(key)
        if known is None:
            known = self._calibrations[key] = self.metadata[arch].for_file(served_file)
        return known

    def _run(self, arch: str, batch: np.ndarray, timeout: float) -> ArmResult:
        meta = self.metadata[arch]
        batch = preprocess.match_colour(resize_batch(batch, meta.input_size), meta.colour)
        n = len(batch)
        start = time.perf_counter()
        try:
            inference: Inference = self.backend.infer(arch, np.ascontiguousarray(batch), timeout, meta.flip_tta)
        except BackendUnavailable:
            self.c_errors.labels(arch, "unavailable").inc()
            raise
        seconds = time.perf_counter() - start
        version = inference.model_version
        meta = self.calibration(arch, inference.model_file)
        probs = meta.calibrate(inference.probabilities)
        self.h_latency.labels(arch, version).observe(seconds)
        self.h_batch.labels(arch).observe(n)
        for row in probs:
            k = int(row.argmax())
            self.c_pred.labels(arch, version, EMOTIONS[k]).inc()
            self.h_conf.labels(arch, version).observe(float(row[k]))
        return ArmResult(arch, version, probs, seconds * 1000.0, meta.abstain_below)

    def classify(self, batch: np.ndarray, routing_key: str = "", architecture: str = "",
                 timeout: float | None = None) -> Classification:
        timeout = self.timeout if timeout is None else min(timeout, self.timeout)
        policy = self.policies.policy
        ready = self.backend.ready
        if architecture:
            if architecture not in self.input_sizes:
                raise InvalidInput(f"architecture {shown(architecture)} is not served; choose from "
                                   f"{', '.join(self.input_sizes)}")
            if architecture in self.gated:
                raise InvalidInput(f"architecture {shown(architecture)} is held back by the quality gate (validation "
                                   "accuracy below the floor)")
            if architecture not in ready:
                raise Unavailable(f"{architecture} is not ready on Triton")
            arm = architecture
        else:
            arm = choose(policy, (ready & set(self.input_sizes)) - self.gated, routing_key, self.rng)
            if arm is None:
                raise Unavailable("no architecture with weight > 0 is ready on Triton")
        try:
            primary = self._run(arm, batch, timeout)
        except BackendUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        shadow: list[ArmResult] = []
        if policy.shadow_fraction > 0 and self.rng.random() < policy.shadow_fraction:
            others = [a for a in self.input_sizes if a != arm and a in ready and a not in self.gated]
            futures = [self._shadow_pool.submit(self._run, a, batch, timeout) for a in others]
            labels = primary.probabilities.argmax(axis=1)
            for future in futures:
                try:
                    result = future.result()
                except BackendUnavailable:
                    continue
                agree = result.probabilities.argmax(axis=1) == labels
                self.c_shadow.labels(result.architecture, "true").inc(int(agree.sum()))
                self.c_shadow.labels(result.architecture, "false").inc(int((~agree).sum()))
                shadow.append(result)
        return Classification(primary, shadow)

    def close(self) -> None:
        self._shadow_pool.shutdown(wait=False)
