"""The standard `main` of every service: config, logging, server, drain, exit code.

Exit codes: 0 after a clean drain, 2 for a configuration error (one line on stderr, as
argparse does for usage errors), 1 when the server cannot start (e.g. its port is taken).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from .config import ConfigError, ServerConfig, load_config
from .logs import configure_logging
from .server import GrpcServer, serve_forever

C = TypeVar("C", bound=ServerConfig)


def run_service(config_cls: type[C], build: Callable[[C], GrpcServer],
                argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    prog = prog or f"ferlite serve {config_cls.SERVICE}"
    try:
        config = load_config(config_cls, argv, prog=prog)
        configure_logging(config.SERVICE, config.log_level, config.log_format)
        server = build(config)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    try:
        return serve_forever(server)
    except (OSError, RuntimeError) as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        server.stop(0)
        return 1
