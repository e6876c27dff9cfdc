"""One server builder for every ferlite service.

It mounts the service's servicers and adds what every service needs: grpc.health.v1 health
checking, server reflection (so grpcurl works without .proto files), the metrics interceptor
and /metrics endpoint, message-size limits, optional TLS/mTLS, and a graceful drain on SIGTERM:
health flips to NOT_SERVING (so load balancers stop sending), new calls are refused, in-flight
calls get `grace_seconds` to finish, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc import aio
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .calls import CallLimits, OffloadInterceptor
from .config import ServerConfig
from .metrics import MetricsInterceptor, ServiceMetrics, serve_metrics
from .security import TokenAuthInterceptor, auth_rules

log = logging.getLogger("ferlite.server")


@dataclass(frozen=True)
class Mount:
    """A servicer to mount: its full gRPC service name and the generated `add_…_to_server`."""

    name: str
    register: Callable[[aio.Server], None]


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
    """A started-on-demand grpc.aio server with health, reflection, metrics and drain.

    The server's event loop runs in its own thread; open calls cost coroutines there, and sync
    handlers run in `max_workers` threads once their request is in (see `calls`). Health and
    reflection answer on the loop itself, so busy workers never delay a probe."""

    def __init__(self, config: ServerConfig, mounts: Sequence[Mount],
                 metrics: ServiceMetrics | None = None,
                 on_stop: Sequence[Callable[[], None]] = (), protected: Sequence[str] = (),
                 internal: Sequence[str] = (), scoped: Mapping[str, Sequence[str]] | None = None) -> None:
        self.config = config
        self.mounts = list(mounts)
        self.metrics = metrics or ServiceMetrics(config.SERVICE)
        self.on_stop = list(on_stop)
        self.protected = list(protected)  # full method names that need the admin token
        self.internal = list(internal)  # the pipeline's writes: they need the service token
        # method -> the classroom-scoped tokens it takes besides the admin token (cameras, teachers)
        self.scoped = {m: list(tokens) for m, tokens in (scoped or {}).items()}
        self.health = health_aio.HealthServicer()
        self.port = 0
        self.metrics_port = -1
        self._server: aio.Server | None = None
        self._health_server: aio.Server | None = None  # health only, plaintext (health_port)
        self.health_port = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._metrics_server = None
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def start(self) -> GrpcServer:
        loop = asyncio.new_event_loop()
        self._workers = ThreadPoolExecutor(self.config.max_workers, thread_name_prefix=self.config.SERVICE)
        loop.set_default_executor(self._workers)  # `calls.in_worker` runs sync work there
        self._thread = threading.Thread(target=loop.run_forever, name=f"{self.config.SERVICE}-grpc", daemon=True)
        self._thread.start()
        self._loop = loop
        try:
            self._run(self._start())
        except BaseException:
            self._close_loop()
            raise
        if self.config.metrics_port >= 0:
            self._metrics_server, self.metrics_port = serve_metrics(
                self.metrics.registry, self.config.host, self.config.metrics_port)
        log.info("serving", extra={"port": self.port, "socket": self.config.socket, "health_port": self.health_port,
                                   "metrics_port": self.metrics_port, "tls": self.config.tls_enabled,
                                   "mtls": bool(self.config.tls_client_ca),
                                   "auth": bool(self.config.token and self.protected),
                                   "service_auth": bool(self.config.service_token_value and self.internal),
                                   "scoped_tokens": len({t for ts in self.scoped.values() for t in ts}),
                                   "services": [m.name for m in self.mounts]})
        return self

    def _run(self, coroutine: Any, timeout: float | None = None) -> Any:
        """Run `coroutine` on the server's loop from another thread and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _start(self) -> None:
        cfg = self.config
        options = [
            ("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", 0),
            # Clients re-resolve when a connection ages out, so replicas added by the HPA get traffic;
            # the grace then ends whatever is still open on the old connection.
            ("grpc.max_connection_age_ms", 5 * 60 * 1000),
            ("grpc.max_connection_age_grace_ms", 30 * 1000),
            ("grpc.max_connection_idle_ms", 5 * 60 * 1000),
            # Keepalive both ways: dead peers are found within 80 s; a client pinging more often than
            # every 10 s without calls is sent GOAWAY instead of costing the server its pings.
            ("grpc.keepalive_time_ms", 60 * 1000),
            ("grpc.keepalive_timeout_ms", 20 * 1000),
            ("grpc.http2.min_ping_interval_without_data_ms", 10 * 1000),
            ("grpc.http2.max_ping_strikes", 2),
            # Room on one connection for more than a caller's shares of open and of guarded calls, so
            # that going past a share is answered RESOURCE_EXHAUSTED rather than queued by HTTP/2.
            ("grpc.max_concurrent_streams", 2 * (cfg.max_calls_per_peer + cfg.max_calls_per_credential)),
        ]
        server = aio.server(interceptors=self._interceptors(), options=options)
        for mount in self.mounts:
            mount.register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [m.name for m in self.mounts]
        reflection.enable_server_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME], server)
        address = f"{cfg.host}:{cfg.port}"
        try:
            if cfg.tls_enabled:
                self.port = server.add_secure_port(address, server_credentials(cfg))
            else:
                self.port = server.add_insecure_port(address)
            if cfg.socket:  # beside the port: the local stack's own hops, which no other user can reach
                prepare_socket_path(Path(cfg.socket))
                server.add_insecure_port(f"unix:{cfg.socket}")
        except RuntimeError as exc:  # grpc.aio raises where grpc returned 0
            raise OSError(f"could not bind gRPC {address}{' or ' + cfg.socket if cfg.socket else ''}: {exc}") from None
        if self.port == 0:
            raise OSError(f"could not bind gRPC port {address}")
        if cfg.socket:
            os.chmod(cfg.socket, 0o600)
        await server.start()
        self._server = server
        if cfg.health_port >= 0:  # the same health states, nothing else, for probes that cannot do TLS
            health = aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, health)
            self.health_port = health.add_insecure_port(f"{cfg.host}:{cfg.health_port}")
            await health.start()
            self._health_server = health
        for name in ["", LIVENESS, *names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def _interceptors(self) -> list[aio.ServerInterceptor]:
        rules = auth_rules(self.config.token, self.config.service_token_value, self.protected, self.internal,
                           self.scoped)
        interceptors: list[aio.ServerInterceptor] = [MetricsInterceptor(self.metrics)]
        if rules:
            interceptors.append(TokenAuthInterceptor(rules))
        return [*interceptors, CallLimits(self.config.max_calls_per_peer, self.config.max_calls_per_credential,
                                          guarded=rules), OffloadInterceptor()]

    def set_serving(self, name: str, serving: bool) -> None:
        """Report a (sub)service's health; "" is the whole server. Callable from any thread."""
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self.health.set(name, status), loop)
        if threading.current_thread() is not self._thread:  # (on the loop itself, waiting would deadlock)
            with contextlib.suppress(Exception):
                future.result(5)

    def stop(self, grace: float | None = None) -> None:
        """Drain: NOT_SERVING, refuse new calls, let in-flight ones finish, then run on_stop."""
        with self._stop_lock:
            if self._stopped.is_set() or self._server is None:
                self._close_loop()
                self._stopped.set()
                return
            grace = self.config.grace_seconds if grace is None else grace
            log.info("draining", extra={"grace_seconds": grace})
            self._run(self._drain(grace))
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server.server_close()
            for callback in self.on_stop:
                try:
                    callback()
                except Exception:
                    log.exception("shutdown callback failed")
            self._close_loop()
            if self.config.socket:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.config.socket)
            log.info("stopped")
            self._stopped.set()

    async def _drain(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        assert self._server is not None
        await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)

    def _close_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        if self._workers is not None:
            self._workers.shutdown(wait=False, cancel_futures=True)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stop() has finished; True if it has."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(0)


def prepare_socket_path(path: Path) -> None:
    """A Unix socket's folder must be this user's alone (0700): nobody else may connect, nor replace
    the socket file between our runs. A stale socket from a killed run is removed."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(f"socket folder {folder} must be owned by this user with mode 0700 "
                      f"(it is {oct(info.st_mode & 0o777)})")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


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
