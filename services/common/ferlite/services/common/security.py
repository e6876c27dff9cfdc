"""Request-level protections shared by the services: bearer-token auth and per-client rate limits.

Tokens are compared with `hmac.compare_digest` (constant time), so response timing does not leak
how much of a guessed token was right. Rate limits are token buckets keyed by client, kept in a
bounded LRU so a flood of distinct client ids cannot grow memory without limit.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc
from grpc import aio

AUTH_HEADER = "authorization"


def bearer(metadata: Iterable[tuple[str, Any]] | None) -> str:
    for key, value in metadata or ():
        if key.lower() == AUTH_HEADER and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):]
    return ""


class TokenAuthInterceptor(aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` on the listed methods (full names, /pkg.Svc/Method),
    each with the tokens it accepts: the admin token on queries and A/B control, the service token
    (or the admin token) on the pipeline's writes. A method not listed is open. A refused call is
    answered before any application work and before any limit counts it."""

    def __init__(self, rules: Mapping[str, Iterable[str]]) -> None:
        encoded = {method: tuple(t.encode() for t in tokens if t) for method, tokens in rules.items()}
        self.rules = {method: tokens for method, tokens in encoded.items() if tokens}  # no token: open

    def _allowed(self, details: Any) -> bool:
        given = bearer(details.invocation_metadata).encode()
        # Every candidate is compared (constant time each), so timing does not say which one matched.
        return sum(hmac.compare_digest(given, token) for token in self.rules[details.method]) > 0

    async def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method not in self.rules or self._allowed(details):
            return handler
        return deny_with(handler, grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required for this call")


def deny_with(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, details: str) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour replaced by an immediate `code` (whichever of the four kinds it is)."""

    async def deny(request: Any, context: aio.ServicerContext) -> Any:
        await context.abort(code, details)

    async def deny_stream(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
        await context.abort(code, details)
        yield  # pragma: no cover

    side = {True: "stream", False: "unary"}
    kind = f"{side[bool(handler.request_streaming)]}_{side[bool(handler.response_streaming)]}"
    return handler._replace(**{kind: deny_stream if handler.response_streaming else deny})


def auth_rules(admin_token: str, service_token: str, protected: Iterable[str], internal: Iterable[str],
               scoped: Mapping[str, Iterable[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """Which token each guarded method accepts. `protected` (erase, A/B control) take the admin token;
    `internal` (Classify, RecordEvents: the pipeline's writes) take the service token, or the admin
    token, and are open only while no service token is configured; `scoped` methods take their own
    tokens or the admin token: face detection's frame calls camera tokens (never the service token:
    the pipeline's credential is not handed to cameras), the aggregator's reads teacher tokens. The
    handler then checks the token's classrooms."""
    rules: dict[str, tuple[str, ...]] = {m: (admin_token,) for m in protected if admin_token}
    if service_token:
        rules.update({m: (service_token, admin_token) for m in internal})
    for method, tokens in (scoped or {}).items():
        accepted = (*tokens, admin_token)
        if any(accepted):
            rules[method] = accepted
    return rules


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call on a channel, of all four kinds (a camera's
    ProcessStream too, not only a service calling its peers)."""

    def __init__(self, token: str) -> None:
        self.metadata = token_metadata(token)

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), *self.metadata])

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def credential_key(metadata: Iterable[tuple[str, Any]] | None) -> str:
    """A short, non-reversible key for the caller's bearer token: what limits count per credential."""
    return hashlib.sha256(bearer(metadata).encode()).hexdigest()[:16]


def token_metadata(token: str) -> list[tuple[str, str]]:
    return [(AUTH_HEADER, f"Bearer {token}")] if token else []


class RateLimiter:
    """Token bucket per client key: `rate` events per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return allowed
