"""Triton access for the classifier: inference per architecture and a readiness watcher."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from ferlite.base import preprocess

log = logging.getLogger("ferlite.classifier.backend")


class BackendUnavailable(RuntimeError):
    """Triton or the model cannot answer now."""


@dataclass(frozen=True)
class Inference:
    probabilities: np.ndarray  # N x 7
    model_version: str


def as_model_input(batch: np.ndarray, datatype: str) -> np.ndarray:
    """A batch of crops (uint8 pixels or [0, 1] floats) as the model's input type."""
    if datatype == "UINT8":
        if batch.dtype != np.uint8:
            batch = np.clip(np.rint(batch * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(batch)
    if batch.dtype == np.uint8:
        batch = preprocess.normalize(batch)
    return np.ascontiguousarray(batch, dtype=np.float32)


class TritonBackend:
    def __init__(self, url: str, architectures: Iterable[str], interval: float = 0.5,
                 on_change: Callable[[set[str]], None] = lambda ready: None) -> None:
        self.url = url
        self.architectures = list(architectures)
        self.interval = interval
        self.on_change = on_change
        self.client = triton.InferenceServerClient(url)
        self._ready: set[str] = set()
        self._datatypes: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def ready(self) -> set[str]:
        return set(self._ready)

    def check(self) -> set[str]:
        """Ask Triton which architectures are ready now; update and return the set."""
        ready: set[str] = set()
        try:
            if self.client.is_server_live(client_timeout=1.0):
                ready = {a for a in self.architectures if self.client.is_model_ready(a, client_timeout=1.0)}
        except InferenceServerException:
            ready = set()
        self._set_ready(ready)
        return ready

    def _set_ready(self, ready: set[str]) -> None:
        """Replace the ready set; tell the health watcher whenever it changes, whoever noticed."""
        with self._lock:
            was, self._ready = self._ready, set(ready)
        if ready != was:
            log.warning("ready architectures changed", extra={"ready": sorted(ready), "was": sorted(was)})
            self.on_change(set(ready))

    def start(self) -> TritonBackend:
        self.check()
        self._thread = threading.Thread(target=self._watch, name="triton-readiness", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        self.client.close()

    def input_datatype(self, architecture: str) -> str:
        """The model's input type as Triton declares it: UINT8 (embedded repository: pixels, the model
        normalises) or FP32 (ONNX Runtime backend: [0, 1] floats). Asked once per architecture."""
        known = self._datatypes.get(architecture)
        if known is None:  # raises InferenceServerException like infer: the caller handles both
            meta = self.client.get_model_metadata(architecture, client_timeout=2.0)
            known = self._datatypes[architecture] = meta.inputs[0].datatype
        return known

    def infer(self, architecture: str, batch: np.ndarray, timeout: float) -> Inference:
        """Run one batch; fail fast (BackendUnavailable) rather than hang past `timeout`."""
        if architecture not in self._ready:
            raise BackendUnavailable(f"{architecture} is not ready on Triton")
        try:
            datatype = self.input_datatype(architecture)
            tensor = triton.InferInput("image", list(batch.shape), datatype)
            tensor.set_data_from_numpy(as_model_input(batch, datatype))
            result = self.client.infer(architecture, [tensor], outputs=[triton.InferRequestedOutput("probs")],
                                       client_timeout=max(0.05, timeout))
        except InferenceServerException as exc:
            status = (exc.status() or "").upper()
            if "DEADLINE" in status or "UNAVAILABLE" in status or "NOT READY" in str(exc).upper():
                # A failed arm leaves the ready set now, and health hears of it (under traffic the
                # readiness poll would otherwise find the set already changed and say nothing).
                self._set_ready(self._ready - {architecture})
            raise BackendUnavailable(f"Triton failed for {architecture}: {exc.message()}") from exc
        return Inference(result.as_numpy("probs"), result.get_response().model_version)
