"""Prometheus metrics: a per-service registry, an RPC interceptor and the /metrics endpoint.

Names follow `ferlite_<service>_<what>_<unit>`. Each server owns a `CollectorRegistry` rather
than the process-global one, so several services (or tests) can share one process without
clashing, and a service's own metrics sit beside the RPC metrics on one endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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


def _code_name(context: grpc.ServicerContext, default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return default


class MetricsInterceptor(grpc.ServerInterceptor):
    """Times every RPC and counts it by final status code.

    It also refuses calls whose deadline has already passed before any work is done, so a
    backlog of stale requests (clients that gave up) never costs handler time.
    """

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.latency = metrics.histogram(
            "rpc_duration_seconds", "Server-side RPC latency, by method.", ["method"])
        self.handled = metrics.counter(
            "rpc_handled_total", "RPCs completed, by method and gRPC status code.", ["method", "code"])
        self.in_flight = metrics.gauge("rpc_in_flight", "RPCs being served now.", ["method"])

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary:
            return handler._replace(unary_unary=self._wrap_unary(handler.unary_unary, method))
        if handler.stream_unary:
            return handler._replace(stream_unary=self._wrap_unary(handler.stream_unary, method))
        if handler.unary_stream:
            return handler._replace(unary_stream=self._wrap_stream(handler.unary_stream, method))
        if handler.stream_stream:
            return handler._replace(stream_stream=self._wrap_stream(handler.stream_stream, method))
        return handler

    def _refuse_expired(self, context: grpc.ServicerContext) -> None:
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline expired before the call started")

    def _record(self, method: str, start: float, code: str) -> None:
        self.latency.labels(method).observe(time.perf_counter() - start)
        self.handled.labels(method, code).inc()
        self.in_flight.labels(method).dec()

    def _wrap_unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            self.in_flight.labels(method).inc()
            code = "OK"
            try:
                self._refuse_expired(context)
                return behaviour(request, context)
            except Exception:
                code = _code_name(context, "UNKNOWN")
                raise
            finally:
                self._record(method, start, _code_name(context, code))

        return wrapper

    def _wrap_stream(self, behaviour: Callable[..., Iterator[Any]], method: str
                     ) -> Callable[..., Iterator[Any]]:
        def wrapper(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            start = time.perf_counter()
            self.in_flight.labels(method).inc()
            code = "OK"
            try:
                self._refuse_expired(context)
                yield from behaviour(request, context)
            except GeneratorExit:
                code = "CANCELLED"
                raise
            except Exception:
                code = _code_name(context, "UNKNOWN")
                raise
            finally:
                self._record(method, start, _code_name(context, code))

        return wrapper


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> tuple[Any, int]:
    """Start the /metrics HTTP endpoint; return (server, bound port). Port 0 picks a free one."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, server.server_address[1]
