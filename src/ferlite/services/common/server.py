"""One server builder for every ferlite service.

It mounts the service's servicers and adds what every service needs: grpc.health.v1 health
checking, server reflection (so grpcurl works without .proto files), the metrics interceptor
and /metrics endpoint, message-size limits, optional TLS/mTLS, and a graceful drain on SIGTERM:
health flips to NOT_SERVING (so load balancers stop sending), new calls are refused, in-flight
calls get `grace_seconds` to finish, then the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .config import ServerConfig
from .metrics import MetricsInterceptor, ServiceMetrics, serve_metrics
from .security import TokenAuthInterceptor, auth_rules

log = logging.getLogger("ferlite.server")


@dataclass(frozen=True)
class Mount:
    """A servicer to mount: its full gRPC service name and the generated `add_…_to_server`."""

    name: str
    register: Callable[[grpc.Server], None]


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials:
    """TLS credentials from the configured PEM files; mTLS when a client CA is given."""
    key = Path(config.tls_key).read_bytes()
    cert = Path(config.tls_cert).read_bytes()
    client_ca = Path(config.tls_client_ca).read_bytes() if config.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None)


# A health service that is SERVING while the process can answer at all: the liveness probe's
# target. Readiness ("" and the named services) may be NOT_SERVING for minutes while a dependency
# (Triton pulling its image, Redis down) is away; that must never get the pod restarted.
LIVENESS = "liveness"

class GrpcServer:
    """A started-on-demand gRPC server with health, reflection, metrics and drain."""

    def __init__(self, config: ServerConfig, mounts: Sequence[Mount],
                 metrics: ServiceMetrics | None = None,
                 on_stop: Sequence[Callable[[], None]] = (), protected: Sequence[str] = (),
                 internal: Sequence[str] = ()) -> None:
        self.config = config
        self.mounts = list(mounts)
        self.metrics = metrics or ServiceMetrics(config.SERVICE)
        self.on_stop = list(on_stop)
        self.protected = list(protected)  # full method names that need the admin token
        self.internal = list(internal)  # the pipeline's writes: they need the service token
        self.health = health.HealthServicer(experimental_non_blocking=True)
        self.port = 0
        self.metrics_port = -1
        self._server: grpc.Server | None = None
        self._metrics_server = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def start(self) -> GrpcServer:
        cfg = self.config
        options = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Clients re-resolve when a connection ages out, so replicas added by the HPA get traffic.
            ("grpc.max_connection_age_ms", 5 * 60 * 1000),
            ("grpc.max_connection_age_grace_ms", 30 * 1000),
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=cfg.max_workers, thread_name_prefix=cfg.SERVICE),
            interceptors=self._interceptors(),
            options=options,
        )
        for mount in self.mounts:
            mount.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [m.name for m in self.mounts]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME], server)
        address = f"{cfg.host}:{cfg.port}"
        if cfg.tls_enabled:
            self.port = server.add_secure_port(address, server_credentials(cfg))
        else:
            self.port = server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"could not bind gRPC port {address}")
        if cfg.metrics_port >= 0:
            self._metrics_server, self.metrics_port = serve_metrics(
                self.metrics.registry, cfg.host, cfg.metrics_port)
        server.start()
        self._server = server
        for name in ["", LIVENESS, *names]:
            self.set_serving(name, True)
        log.info("serving", extra={"port": self.port, "metrics_port": self.metrics_port,
                                   "tls": cfg.tls_enabled, "mtls": bool(cfg.tls_client_ca),
                                   "auth": bool(cfg.token and self.protected),
                                   "service_auth": bool(cfg.service_token_value and self.internal),
                                   "services": names})
        return self

    def _interceptors(self) -> list[grpc.ServerInterceptor]:
        interceptors: list[grpc.ServerInterceptor] = [MetricsInterceptor(self.metrics)]
        rules = auth_rules(self.config.token, self.config.service_token_value, self.protected, self.internal)
        if rules:
            interceptors.append(TokenAuthInterceptor(rules))
        return interceptors

    def set_serving(self, name: str, serving: bool) -> None:
        """Report a (sub)service's health; "" is the whole server."""
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        self.health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING, refuse new calls, let in-flight ones finish, then run on_stop."""
        with self._stop_lock:
            if self._stopped.is_set() or self._server is None:
                self._stopped.set()
                return
            grace = self.config.grace_seconds if grace is None else grace
            log.info("draining", extra={"grace_seconds": grace})
            self.health.enter_graceful_shutdown()
            self._server.stop(grace).wait()
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server.server_close()
            for callback in self.on_stop:
                try:
                    callback()
                except Exception:
                    log.exception("shutdown callback failed")
            log.info("stopped")
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() has finished; True if it has."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(0)


def serve_forever(server: GrpcServer) -> int:
    """Start `server`, drain on SIGTERM or SIGINT, and return the exit code (0 on a clean stop).

    The handlers are installed before the server starts: a SIGTERM that arrives while it starts (an
    orchestrator deleting a pod just scheduled) is kept and drains it once it serves, instead of
    killing the process with whatever it had accepted (the aggregator's spool, say)."""
    requested, started = threading.Event(), threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        requested.set()
        if started.is_set():  # stop from another thread: the handler runs on the main thread
            threading.Thread(target=server.stop, name="drain", daemon=True).start()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    server.start()
    started.set()
    if requested.is_set():
        server.stop()
    while not server.wait(timeout=1.0):
        pass
    return 0
