"""Wrapping a grpc.aio method handler's behaviour, whichever of the four kinds it is: the one place
that knows an async unary behaviour is a coroutine function and an async streaming one an async
generator function (the interceptors wrap those; anything else is left as it is)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import grpc

Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


def wrap_handler(handler: grpc.RpcMethodHandler, unary: Wrap, stream: Wrap) -> grpc.RpcMethodHandler:
    """`handler` with its behaviour wrapped by `unary` (unary response) or `stream` (streamed response)."""
    for kind in ("unary_unary", "stream_unary"):
        behaviour = getattr(handler, kind)
        if behaviour is not None and inspect.iscoroutinefunction(behaviour):
            return handler._replace(**{kind: unary(behaviour)})
    for kind in ("unary_stream", "stream_stream"):
        behaviour = getattr(handler, kind)
        if behaviour is not None and inspect.isasyncgenfunction(behaviour):
            return handler._replace(**{kind: stream(behaviour)})
    return handler
