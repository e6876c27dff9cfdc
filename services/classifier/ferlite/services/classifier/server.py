"""gRPC transport of the classifier and the A/B admin: protobuf <-> NumPy, errors -> codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import grpc

from ferlite.base.labels import EMOTIONS
from ferlite.services.common.metrics import ServiceMetrics
from ferlite.services.common.runner import run_service
from ferlite.services.common.server import GrpcServer, Mount
from ferlite.v1 import classifier_pb2 as pb
from ferlite.v1 import classifier_pb2_grpc as pb_grpc
from ferlite.v1 import common_pb2

from .backend import TritonBackend, TritonTLS
from .config import ClassifierConfig
from .core import ArmResult, Classifier, InvalidInput, Unavailable, decode_crops
from .policy import ABPolicy, PolicyError, PolicyReadOnly, PolicyStore, champion_policy
from .repository import build_repository, discover
from .triton import EmbeddedTriton, grpc_url_in

CLASSIFIER = "ferlite.v1.Classifier"
ADMIN = "ferlite.v1.ABAdmin"
PROTECTED = [f"/{ADMIN}/GetPolicy", f"/{ADMIN}/SetPolicy"]  # A/B control is for admins only
INTERNAL = [f"/{CLASSIFIER}/Classify"]  # facedetect's calls carry the service token
DTYPES = {common_pb2.CROP_DTYPE_FLOAT32: "float32", common_pb2.CROP_DTYPE_UINT8: "uint8"}


def _results(arm: ArmResult) -> list[common_pb2.Classification]:
    out = []
    for row, uncertain in zip(arm.probabilities, arm.uncertain, strict=True):
        k = int(row.argmax())
        out.append(common_pb2.Classification(probabilities=[float(p) for p in row], label=EMOTIONS[k],
                                             confidence=float(row[k]), uncertain=bool(uncertain)))
    return out


def _ref(arm: ArmResult) -> common_pb2.ModelRef:
    return common_pb2.ModelRef(architecture=arm.architecture, model_version=arm.model_version)


class ClassifierServicer(pb_grpc.ClassifierServicer):
    def __init__(self, core: Classifier) -> None:
        self.core = core

    def Classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        try:
            crops = [(c.height, c.width, c.channels, DTYPES.get(c.dtype, "unspecified"), c.data) for c in request.crops]
            batch = decode_crops(crops, self.core.max_batch)
            result = self.core.classify(batch, request.routing_key, request.architecture, context.time_remaining())
        except InvalidInput as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Unavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        primary = result.primary
        return pb.ClassifyResponse(
            results=_results(primary), model=_ref(primary), shadow_scored=bool(result.shadow),
            shadow=[pb.ShadowResult(model=_ref(s), results=_results(s), latency_ms=s.latency_ms)
                    for s in result.shadow],
            latency_ms=primary.latency_ms)


class AdminServicer(pb_grpc.ABAdminServicer):
    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    @staticmethod
    def _to_pb(policy: ABPolicy) -> pb.ABPolicy:
        return pb.ABPolicy(weights=policy.weights, sticky=policy.sticky, shadow_fraction=policy.shadow_fraction,
                           revision=policy.revision)

    def GetPolicy(self, request: pb.GetPolicyRequest, context: grpc.ServicerContext) -> pb.ABPolicy:
        return self._to_pb(self.store.policy)

    def SetPolicy(self, request: pb.SetPolicyRequest, context: grpc.ServicerContext) -> pb.ABPolicy:
        p = request.policy
        try:
            policy = self.store.set(ABPolicy(dict(p.weights), p.sticky, p.shadow_fraction))
        except PolicyReadOnly as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except PolicyError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return self._to_pb(policy)


class ClassifierServer(GrpcServer):
    """gRPC server + Triton (embedded or external) + readiness watcher + policy reloader."""

    def __init__(self, config: ClassifierConfig, core: Classifier, policies: PolicyStore, backend: TritonBackend,
                 metrics: ServiceMetrics, triton: EmbeddedTriton | None) -> None:
        mounts = [Mount(CLASSIFIER, lambda s: pb_grpc.add_ClassifierServicer_to_server(ClassifierServicer(core), s)),
                  Mount(ADMIN, lambda s: pb_grpc.add_ABAdminServicer_to_server(AdminServicer(policies), s))]
        super().__init__(config, mounts, metrics=metrics, on_stop=[self._shutdown], protected=PROTECTED,
                         internal=INTERNAL)
        self.core, self.policies, self.backend, self.triton = core, policies, backend, triton
        backend.on_change = self._on_ready_change
        policies.on_change = core.publish_policy

    def _on_ready_change(self, ready: set[str]) -> None:
        self.core.publish_ready(ready)
        if self._server is not None:
            self.set_serving("", bool(ready))
            self.set_serving(CLASSIFIER, bool(ready))

    def start(self) -> ClassifierServer:
        if self.triton is not None:
            self.triton.start()
            restarts = self.metrics.counter("embedded_triton_restarts_total",
                                            "Times the embedded Triton died and was restarted.", [])
            self.triton.watch(on_restart=restarts.inc)
        self.backend.start()
        self.policies.start()
        super().start()
        self._on_ready_change(self.backend.ready)
        return self

    def _shutdown(self) -> None:
        self.policies.stop()
        self.backend.stop()
        self.core.close()
        if self.triton is not None:
            self.triton.stop()


def triton_workspace(repository_dir: str | Path) -> Path:
    """Where the embedded Triton keeps its files (and its gRPC socket) under repository_dir."""
    return Path(repository_dir) / "server"


def embedded_triton_url(repository_dir: str | Path) -> str:
    """The gRPC target of the Triton a classifier started with this repository_dir embeds."""
    return grpc_url_in(triton_workspace(repository_dir))


def build(config: ClassifierConfig) -> ClassifierServer:
    models = discover(config.model_dir)
    triton = None
    url = config.triton_url
    if not url:
        repo = Path(config.repository_dir) / "repository"
        build_repository(config.model_dir, repo, "embedded", max_batch=config.max_batch, runtime=config.runtime,
                         batch_delay_us=config.batch_delay_us, instances=config.triton_instances,
                         threads=config.triton_threads, precision=config.precision)
        triton = EmbeddedTriton(repo, triton_workspace(config.repository_dir), config.triton_metrics_port)
        url = triton.grpc_url
    metrics = ServiceMetrics(config.SERVICE)
    backend = TritonBackend(url, [m.architecture for m in models], config.readiness_interval,
                            shared_memory=config.triton_shared_memory and triton is not None,
                            tls=TritonTLS(config.triton_tls_ca, config.triton_tls_cert, config.triton_tls_key,
                                          config.triton_tls_server_name))
    metadata = {m.architecture: m.meta for m in models}
    servable = {a: m.val_accuracy for a, m in metadata.items()
                if m.val_accuracy is not None and m.val_accuracy >= config.min_val_accuracy}
    policies = PolicyStore(config.policy_file or None, default=champion_policy(servable))
    core = Classifier(backend, policies, metadata, metrics, config.max_batch, config.timeout_seconds, config.seed,
                      min_val_accuracy=config.min_val_accuracy)
    return ClassifierServer(config, core, policies, backend, metrics, triton)


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(ClassifierConfig, build, argv)


if __name__ == "__main__":
    sys.exit(main())
