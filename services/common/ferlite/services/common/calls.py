"""How a call is run: no thread until it has a request, a caller allowed to make it, and room.

Every ferlite server is a `grpc.aio` server. An open call costs a coroutine, not a thread: a
unary call whose body never arrives, an idle reflection stream, a paused camera's stream or an
open dashboard's follow holds no worker. A sync handler (every unary method) runs in the loop's
default executor, the service's pool of `max_workers` threads, only once its request is in, its
token checked and the caller's limit of concurrent calls not reached.

A sync handler gets a `SyncContext`: the parts of a servicer context a handler uses, safe from a
worker thread; its `abort` raises `Aborted`, which the loop turns into the call's status.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
from grpc import aio

from .handlers import wrap_handler
from .security import credential_key


class Aborted(Exception):
    """A sync handler ended its call with a status (raised by `SyncContext.abort`)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class SyncContext:
    """A servicer context for a handler running in a worker thread."""

    def __init__(self, context: aio.ServicerContext) -> None:
        self._context = context
        self._code: grpc.StatusCode | None = None
        self._details = ""

    def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details
        raise Aborted(code, details)

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def details(self) -> str:
        return self._details

    def is_active(self) -> bool:
        return not self._context.cancelled()

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def peer(self) -> str:
        return self._context.peer()

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._context.auth_context()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()


async def in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(*args)` in the service's worker pool (the loop's default executor)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, contextvars.copy_context().run, fn, *args)


def _offload(behaviour: Callable[[Any, Any], Any]) -> Callable[[Any, aio.ServicerContext], Any]:
    async def run(request: Any, context: aio.ServicerContext) -> Any:
        try:
            return await in_worker(behaviour, request, SyncContext(context))
        except Aborted as exc:
            await context.abort(exc.code, exc.details)

    return run


class OffloadInterceptor(aio.ServerInterceptor):
    """The innermost interceptor: a sync unary handler becomes a coroutine that runs it in a worker.
    Streaming handlers are async generators already (a sync one would hold a thread while idle)."""

    async def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is not None and handler.unary_unary and not inspect.iscoroutinefunction(handler.unary_unary):
            return handler._replace(unary_unary=_offload(handler.unary_unary))
        return handler


def peer_host(peer: str) -> str:
    """`ipv4:127.0.0.1:5555` -> `ipv4:127.0.0.1`; a Unix socket peer stays whole."""
    return peer.rsplit(":", 1)[0] if peer.count(":") >= 2 else peer


class CallLimits(aio.ServerInterceptor):
    """Caps the calls one caller has running at once. A guarded method (its token checked before
    this runs) counts against its credential, so one camera's token cannot take every slot however
    many addresses it calls from; an open method (reflection, or everything while auth is off)
    counts against the caller's address. Health is never limited: probes must always get through."""

    EXEMPT = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})

    def __init__(self, per_peer: int, per_credential: int, guarded: Iterable[str]) -> None:
        self.per_peer, self.per_credential = per_peer, per_credential
        self.guarded = frozenset(guarded)
        self.active: Counter[str] = Counter()  # touched on the loop's thread only

    def _key(self, method: str, context: aio.ServicerContext) -> tuple[str, int]:
        if method in self.guarded:
            return "credential:" + credential_key(context.invocation_metadata()), self.per_credential
        return "peer:" + peer_host(context.peer() or ""), self.per_peer

    async def _enter(self, method: str, context: aio.ServicerContext) -> str:
        key, limit = self._key(method, context)
        if self.active[key] >= limit:
            who = "credential" if key.startswith("credential:") else "address"
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"{limit} calls already open from this {who}; close some, or retry later")
        self.active[key] += 1
        return key

    def _leave(self, key: str) -> None:
        self.active[key] -= 1
        if self.active[key] <= 0:
            del self.active[key]

    async def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method in self.EXEMPT:
            return handler
        method = details.method
        return wrap_handler(handler, lambda b: self._wrap_unary(b, method), lambda b: self._wrap_stream(b, method))

    def _wrap_unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def limited(request: Any, context: aio.ServicerContext) -> Any:
            key = await self._enter(method, context)
            try:
                return await behaviour(request, context)
            finally:
                self._leave(key)

        return limited

    def _wrap_stream(self, behaviour: Callable[..., AsyncIterator[Any]], method: str
                     ) -> Callable[..., AsyncIterator[Any]]:
        async def limited(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
            key = await self._enter(method, context)
            try:
                async for item in behaviour(request, context):
                    yield item
            finally:
                self._leave(key)

        return limited
