"""Classifier configuration (flags or FERLITE_CLASSIFIER_* variables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ferlite.base.model_metadata import PRECISIONS
from ferlite.services.common.config import ConfigError, ServerConfig, check_file, check_port, setting


@dataclass(frozen=True)
class ClassifierConfig(ServerConfig):
    """The classification service: routes crops to the four architectures hosted on Triton."""

    SERVICE: ClassVar[str] = "classifier"

    port: int = setting(50052, "gRPC port")
    metrics_port: int = setting(9102, "Prometheus /metrics port; -1 disables")
    model_dir: str = setting("models", "exported models (ferlite export): one folder per architecture")
    triton_url: str = setting("", "host:port of an external Triton's gRPC endpoint; empty starts the embedded one")
    triton_tls_ca: str = setting("", "external Triton over TLS: the CA (PEM) its gRPC certificate chains to (face "
                                 "crops cross this hop: in a cluster, turn it on with the other hops)")
    triton_tls_cert: str = setting("", "client certificate (PEM) for a Triton that requires mTLS")
    triton_tls_key: str = setting("", "private key (PEM) of triton_tls_cert")
    triton_tls_server_name: str = setting("", "name to check in Triton's certificate, if not the host in triton_url")
    triton_metrics_port: int = setting(8002, "embedded Triton metrics port (0 picks a free one)")
    repository_dir: str = setting("var/triton", "where the embedded model repository is written")
    runtime: str = setting("onnxruntime", "embedded models run on onnxruntime or litert")
    precision: str = setting("auto", "which ONNX file each model serves: auto or int8 (the pack's validated int8 "
                             "file where it has one: within 0.5 pt of float on validation and at least 1.5x "
                             "faster for one face, e.g. the MobileNets on VNNI CPUs), float (always the float "
                             "file)")
    policy_file: str = setting("", "A/B policy JSON, hot-reloaded (a mounted ConfigMap in Kubernetes)")
    max_batch: int = setting(64, "most crops in one Classify call")
    # Defaults from benchmarks/triton_sweep.py on 2 cores: one instance with two runtime threads and no
    # batching wait cut one camera's Classify p50 to 0.74x of one thread + 500 us and raised four
    # cameras' faces/s 1.30x; two instances raised throughput more (1.40x) but not one camera's latency.
    batch_delay_us: int = setting(0, "embedded Triton: longest wait for requests to share a batch, microseconds")
    triton_instances: int = setting(1, "embedded Triton: model instances per architecture")
    triton_threads: int = setting(2, "embedded Triton: ONNX Runtime (or LiteRT) threads per model instance")
    triton_shared_memory: bool = setting(True, "embedded Triton: pass crops through system shared memory (0600, "
                                         "zeroed after each call) instead of inside the gRPC message")
    timeout_seconds: float = setting(5.0, "longest wait for Triton when the caller set no deadline")
    readiness_interval: float = setting(0.5, "seconds between Triton readiness checks")
    seed: int = setting(0, "seed of the weighted random routing (0: from the OS)")
    min_val_accuracy: float = setting(0.45, "quality gate: a model whose validation accuracy (metadata.json) is "
                                      "below this never takes traffic (uniform chance is 0.14, always answering "
                                      "the majority class 0.25 on FER2013)")

    def validate(self) -> None:
        super().validate()
        if self.runtime not in {"onnxruntime", "litert"}:
            raise ConfigError(f"runtime={self.runtime!r} must be onnxruntime or litert")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        for name in ("triton_metrics_port",):
            check_port(name, getattr(self, name))
        if (self.triton_tls_ca or self.triton_tls_cert) and not self.triton_url:
            raise ConfigError("triton_tls_* are for an external Triton (triton_url); the embedded one listens on a "
                              "private Unix socket")
        if bool(self.triton_tls_cert) != bool(self.triton_tls_key):
            raise ConfigError("triton_tls_cert and triton_tls_key must be given together")
        if self.triton_tls_cert and not self.triton_tls_ca:
            raise ConfigError("triton_tls_cert (mTLS) needs triton_tls_ca")
        for name in ("triton_tls_ca", "triton_tls_cert", "triton_tls_key"):
            check_file(name, getattr(self, name))
        if not 1 <= self.max_batch <= 1024:
            raise ConfigError(f"max_batch={self.max_batch} must be in 1..1024")
        if not (1 <= self.triton_instances <= 16 and 1 <= self.triton_threads <= 64):
            raise ConfigError(f"triton_instances={self.triton_instances} must be in 1..16 and "
                              f"triton_threads={self.triton_threads} in 1..64")
        if not 0 <= self.batch_delay_us <= 100_000:
            raise ConfigError(f"batch_delay_us={self.batch_delay_us} must be in 0..100000")
        if not 0.0 <= self.min_val_accuracy <= 1.0:
            raise ConfigError(f"min_val_accuracy={self.min_val_accuracy} must be in [0, 1]")
        if self.timeout_seconds <= 0 or self.readiness_interval <= 0:
            raise ConfigError("timeout_seconds and readiness_interval must be > 0")
