"""A minimal service built with the shared plumbing, used to test that plumbing on its own.

`Sleep` takes the number of seconds as ASCII bytes and answers after sleeping, which makes
drain-on-SIGTERM observable. Run: python -m tests.support.sleepy --port 0
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

import grpc

from ferlite.services.common.config import ServerConfig
from ferlite.services.common.runner import run_service
from ferlite.services.common.server import GrpcServer, Mount

SERVICE_NAME = "ferlite.test.v1.Sleepy"
SLEEP_METHOD = f"/{SERVICE_NAME}/Sleep"


@dataclass(frozen=True)
class SleepyConfig(ServerConfig):
    """Configuration of the test service."""

    SERVICE: ClassVar[str] = "sleepy"


log = logging.getLogger("ferlite.sleepy")


def _sleep(request: bytes, context: grpc.ServicerContext) -> bytes:
    try:
        seconds = float(request.decode())
    except ValueError:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "request must be a number of seconds")
    log.info("sleeping", extra={"seconds": seconds})  # tests wait for this line: the call is in flight
    time.sleep(seconds)
    return f"slept {seconds}".encode()


def build(config: SleepyConfig) -> GrpcServer:
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME, {"Sleep": grpc.unary_unary_rpc_method_handler(_sleep)})
    return GrpcServer(config, [Mount(SERVICE_NAME, lambda s: s.add_generic_rpc_handlers((handler,)))])


if __name__ == "__main__":
    sys.exit(run_service(SleepyConfig, build, prog="sleepy"))
