"""Triton access for the classifier: inference per architecture and a readiness watcher."""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
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
    model_file: str = ""  # the model folder's file Triton serves (ServedModel.file), "" when unknown


@dataclass(frozen=True)
class ServedModel:
    """What a Triton model does around the network, read from its config (once per architecture).

    The repositories `ferlite triton-repo` writes (both flavours) take uint8 pixels, normalise them
    and average each face with its mirror image themselves (`flip_tta` parameter) and name the
    model folder's file they serve (`source_file`); a repository of plain exported graphs (built by
    hand, or by an older ferlite) takes [0, 1] floats and leaves the flip to the classifier."""

    datatype: str        # UINT8 (pixels) or FP32 ([0, 1] floats)
    flips: bool = False  # the model returns flip-averaged probabilities itself
    file: str = ""       # the model folder's file it was made from (model_int8.onnx, ...), "" when unknown

    @classmethod
    def from_config(cls, config: dict) -> ServedModel:
        datatype = config["input"][0]["data_type"].removeprefix("TYPE_")
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        return cls(datatype, params.get("flip_tta", "0") == "1", params.get("source_file", ""))


def as_model_input(batch: np.ndarray, datatype: str) -> np.ndarray:
    """A batch of crops (uint8 pixels or [0, 1] floats) as the model's input type."""
    if datatype == "UINT8":
        if batch.dtype != np.uint8:
            batch = np.clip(np.rint(batch * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(batch)
    if batch.dtype == np.uint8:
        batch = preprocess.normalize(batch)
    return np.ascontiguousarray(batch, dtype=np.float32)


SHM_PREFIX = "ferlite_classifier_"  # + <pid>_<n>: n counts over the process (it may run several backends)
_REGION_IDS = itertools.count()
SHM_DIR = "/dev/shm"  # where POSIX shared memory objects live on Linux (shm_open's namespace)


@dataclass
class Region:
    """One POSIX shared-memory object: /dev/shm/<name>, mapped here; Triton opens it as /<name>."""

    name: str
    size: int
    memory: mmap.mmap
    registered: bool = False

    @classmethod
    def create(cls, name: str, size: int) -> Region:
        # O_EXCL and 0600: a new object only this user can read (crops are face pixels)
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            return cls(name, size, mmap.mmap(fd, size))
        finally:
            os.close(fd)

    def release(self) -> None:
        with contextlib.suppress(BufferError):  # a call still writing at shutdown: unlinked all the same
            self.memory.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(SHM_DIR, self.name))


def remove_orphan_regions() -> list[str]:
    """Remove the regions of classifier processes that no longer exist (killed before `close`)."""
    removed = []
    for name in os.listdir(SHM_DIR) if os.path.isdir(SHM_DIR) else []:
        pid = name.removeprefix(SHM_PREFIX).split("_")[0]
        if not name.startswith(SHM_PREFIX) or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(SHM_DIR, name))
                removed.append(name)
        except PermissionError:
            pass  # another user's process, alive
    return removed


class SharedInputs:
    """Triton inputs through system shared memory instead of inside the gRPC message, for the
    embedded Triton on this host: the batch skips protobuf serialisation and the socket
    (measured when the mirror images were sent too: MobileNetV2, 16 crops, 786 KB, a direct Triton
    call 8.7 -> 7.0 ms; the Triton model mirrors them itself now).

    One region per calling thread (a thread waits for its call, so nobody writes a region Triton
    is reading), grown when a batch does not fit. Regions are created 0600 and zeroed after
    every call, so face pixels neither linger nor are readable by another
    user; `close` unregisters and unlinks them. After a Triton restart the registrations are gone:
    `forget` makes each region register again on its next use."""

    def __init__(self, client: triton.InferenceServerClient) -> None:
        self.client = client
        for name in remove_orphan_regions():
            log.warning("removed a shared-memory region left by a dead classifier", extra={"region": name})
        self._local = threading.local()
        self._regions: list[Region] = []
        self._lock = threading.Lock()

    def _region(self, nbytes: int) -> Region:
        region: Region | None = getattr(self._local, "region", None)
        if region is not None and region.size < nbytes:
            self._drop(region)
            region = None
        if region is None:
            size = max(1 << 20, 1 << (nbytes - 1).bit_length())  # powers of two from 1 MiB: few regrowths
            region = Region.create(f"{SHM_PREFIX}{os.getpid()}_{next(_REGION_IDS)}", size)
            with self._lock:
                self._regions.append(region)
            self._local.region = region
        if not region.registered:
            self.client.register_system_shared_memory(region.name, "/" + region.name, region.size,
                                                      client_timeout=2.0)
            region.registered = True
        return region

    def infer(self, architecture: str, batch: np.ndarray, datatype: str, timeout: float):
        region = self._region(batch.nbytes)
        view = np.ndarray(batch.shape, batch.dtype, buffer=region.memory)
        view[...] = batch
        try:
            tensor = triton.InferInput("image", list(batch.shape), datatype)
            tensor.set_shared_memory(region.name, batch.nbytes)
            return self.client.infer(architecture, [tensor], outputs=[triton.InferRequestedOutput("probs")],
                                     client_timeout=timeout)
        except InferenceServerException:
            region.registered = False  # Triton may have restarted: register again next time
            raise
        finally:
            view[...] = 0
            del view  # (a live view would keep the buffer from closing)

    def forget(self) -> None:
        with self._lock:
            for region in self._regions:
                region.registered = False

    def _drop(self, region: Region) -> None:
        with self._lock:
            if region in self._regions:
                self._regions.remove(region)
        self._release(region)

    def _release(self, region: Region) -> None:
        if region.registered:
            with contextlib.suppress(InferenceServerException):  # Triton gone: nothing registered to forget
                self.client.unregister_system_shared_memory(region.name, client_timeout=2.0)
        region.release()

    def close(self) -> None:
        with self._lock:
            regions, self._regions = self._regions, []
        for region in regions:
            self._release(region)


@dataclass(frozen=True)
class TritonTLS:
    """TLS (and mTLS) to an external Triton's gRPC endpoint: face crops cross this hop."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""

    def client(self, url: str) -> triton.InferenceServerClient:
        args = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else None
        return triton.InferenceServerClient(url, ssl=True, root_certificates=self.ca, private_key=self.key or None,
                                            certificate_chain=self.cert or None, channel_args=args)


class TritonBackend:
    def __init__(self, url: str, architectures: Iterable[str], interval: float = 0.5,
                 on_change: Callable[[set[str]], None] = lambda ready: None, shared_memory: bool = False,
                 tls: TritonTLS | None = None) -> None:
        self.url = url
        self.architectures = list(architectures)
        self.interval = interval
        self.on_change = on_change
        self.client = tls.client(url) if tls is not None and tls.ca else triton.InferenceServerClient(url)
        # Only for a Triton on this host (the embedded one): a remote one cannot map our memory.
        self.shared = SharedInputs(self.client) if shared_memory else None
        self._ready: set[str] = set()
        self._served: dict[str, ServedModel] = {}
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
        if ready and not was:  # back after being down: maybe another Triton, maybe other models
            self._served = {}
            if self.shared is not None:
                self.shared.forget()  # a restarted Triton knows no regions
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
        if self.shared is not None:
            self.shared.close()
        self.client.close()

    def served(self, architecture: str) -> ServedModel:
        """What the Triton model of `architecture` takes and does (its config, asked once)."""
        known = self._served.get(architecture)
        if known is None:  # raises InferenceServerException like infer: the caller handles both
            config = self.client.get_model_config(architecture, as_json=True, client_timeout=2.0)["config"]
            known = self._served[architecture] = ServedModel.from_config(config)
        return known

    def infer(self, architecture: str, batch: np.ndarray, timeout: float, flip: bool = False) -> Inference:
        """Run one batch; with `flip`, each face's probabilities are averaged with its mirror
        image's (inside the model where it does that, else both in one call here). Fail fast
        (BackendUnavailable) rather than hang past `timeout`."""
        if architecture not in self._ready:
            raise BackendUnavailable(f"{architecture} is not ready on Triton")
        try:
            served = self.served(architecture)
            datatype = served.datatype
            mirror_here = flip and not served.flips
            n = len(batch)
            if mirror_here:
                batch = np.concatenate([batch, preprocess.mirrored(batch)])
            batch = as_model_input(batch, datatype)
            result = None
            if self.shared is not None:
                try:
                    result = self.shared.infer(architecture, batch, datatype, max(0.05, timeout))
                except (InferenceServerException, OSError) as exc:  # a restarted Triton, /dev/shm full, ...:
                    log.warning("shared-memory inference failed, sending the batch in the message",  # once more
                                extra={"error": str(exc)})
            if result is None:
                tensor = triton.InferInput("image", list(batch.shape), datatype)
                tensor.set_data_from_numpy(batch)
                result = self.client.infer(architecture, [tensor], outputs=[triton.InferRequestedOutput("probs")],
                                           client_timeout=max(0.05, timeout))
        except InferenceServerException as exc:
            status = (exc.status() or "").upper()
            if "DEADLINE" in status or "UNAVAILABLE" in status or "NOT READY" in str(exc).upper():
                # A failed arm leaves the ready set now, and health hears of it (under traffic the
                # readiness poll would otherwise find the set already changed and say nothing).
                self._set_ready(self._ready - {architecture})
            raise BackendUnavailable(f"Triton failed for {architecture}: {exc.message()}") from exc
        probs = result.as_numpy("probs")
        if mirror_here:
            probs = (probs[:n] + probs[n:]) / 2
        return Inference(probs, result.get_response().model_version, served.file)
