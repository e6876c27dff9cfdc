"""Prometheus metrics: a per-service registry, an RPC interceptor and the /metrics endpoint.

Names follow `ferlite_<service>_<what>_<unit>`. Each server owns a `CollectorRegistry` rather
than the process-global one, so several services (or tests) can share one process without
clashing, and a service's own metrics sit beside the RPC metrics on one endpoint.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from http.server import ThreadingHTTPServer
from typing import Any

import grpc
from grpc import aio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import MetricsHandler

from .handlers import wrap_handler

# Latency buckets for calls that range from sub-millisecond cache hits to multi-second batches.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Factory for a service's metrics, prefixing names with `ferlite_<service>_`."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        self.prefix = f"ferlite_{service}_"

    def histogram(self, name: str, doc: str, labels: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return Histogram(self.prefix + name, doc, list(labels), buckets=buckets, registry=self.registry)

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self.prefix + name, doc, list(labels), registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(self.prefix + name, doc, list(labels), registry=self.registry)


def _code_name(context: Any, default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int) and code:  # an aio context reports the status as its number
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), default)
    return default


class MetricsInterceptor(aio.ServerInterceptor):
    """Times every RPC and counts it by final status code (the outermost interceptor: refused
    calls count too).

    It also refuses calls whose deadline has already passed before any work is done, so a
    backlog of stale requests (clients that gave up) never costs handler time.
    """

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.latency = metrics.histogram(
            "rpc_duration_seconds", "Server-side RPC latency, by method.", ["method"])
        self.handled = metrics.counter(
            "rpc_handled_total", "RPCs completed, by method and gRPC status code.", ["method", "code"])
        self.in_flight = metrics.gauge("rpc_in_flight", "RPCs being served now.", ["method"])

    async def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        return wrap_handler(handler, lambda b: self._wrap_unary(b, method), lambda b: self._wrap_stream(b, method))

    async def _refuse_expired(self, context: aio.ServicerContext) -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired before the call started")

    def _record(self, method: str, start: float, code: str) -> None:
        self.latency.labels(method).observe(time.perf_counter() - start)
        self.handled.labels(method, code).inc()
        self.in_flight.labels(method).dec()

    def _wrap_unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def timed(request: Any, context: aio.ServicerContext) -> Any:
            start = time.perf_counter()
            self.in_flight.labels(method).inc()
            code = "OK"
            try:
                await self._refuse_expired(context)
                return await behaviour(request, context)
            except asyncio.CancelledError:
                code = "CANCELLED"
                raise
            except Exception:
                code = _code_name(context, "UNKNOWN")
                raise
            finally:
                self._record(method, start, _code_name(context, code))

        return timed

    def _wrap_stream(self, behaviour: Callable[..., AsyncIterator[Any]], method: str
                     ) -> Callable[..., AsyncIterator[Any]]:
        async def timed(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            start = time.perf_counter()
            self.in_flight.labels(method).inc()
            code = "OK"
            try:
                await self._refuse_expired(context)
                async for item in behaviour(request, context):
                    yield item
            except (asyncio.CancelledError, GeneratorExit):
                code = "CANCELLED"
                raise
            except Exception:
                code = _code_name(context, "UNKNOWN")
                raise
            finally:
                self._record(method, start, _code_name(context, code))

        return timed


class _MetricsHTTPServer(ThreadingHTTPServer):
    """/metrics with bounded threads: at most `max_threads` connections served at once (more are
    closed at once), each with a socket timeout, so idle connections cannot pile up threads."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, max_threads: int) -> None:
        self.slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


# A scrape takes milliseconds; a connection that sends nothing for this long is dropped. Past
# METRICS_MAX_THREADS connections at once, more are closed unanswered (a scraper retries).
METRICS_IDLE_SECONDS = 2.0
METRICS_MAX_THREADS = 16


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[Any, int]:
    """Start the /metrics HTTP endpoint; return (server, bound port). Port 0 picks a free one."""
    handler = type("Handler", (MetricsHandler.factory(registry),), {"timeout": METRICS_IDLE_SECONDS})
    server = _MetricsHTTPServer((host, port), handler, METRICS_MAX_THREADS)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server, server.server_address[1]
