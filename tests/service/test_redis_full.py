"""Issue 27 (S4): "Redis full" told apart from "Redis down", and a spool that cannot fill the disk.

Last review: once Redis reached its maxmemory (noeviction), its OOM answers were taken for an
outage (health "Redis down", the redis_up gauge 0, the outage alert), and the spool, an emptyDir
with no size limit, could grow until the kubelet evicted the pod and its events with it. Here a
real aggregator on a real (embedded) Redis with a small maxmemory fills it, then an outage fills
a small spool."""

from __future__ import annotations

import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferlite.base.events import event_to_pb
from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import REDIS_HEALTH, REDIS_ROOM_HEALTH, build
from ferlite.v1 import aggregator_pb2 as apb
from ferlite.v1 import aggregator_pb2_grpc as apb_grpc
from tests.support.events import event
from tests.support.redis import free_port


def status(channel: grpc.Channel, service: str) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def batch(start: int, n: int = 50) -> apb.RecordEventsRequest:
    now = time.time()
    return apb.RecordEventsRequest(events=[event_to_pb(event(i, ts=now, classroom="full-room"))
                                           for i in range(start, start + n)])


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))


def test_a_full_redis_is_told_apart_from_a_down_one_and_nothing_is_lost(tmp_path) -> None:
    server = build(AggregatorConfig(port=0, metrics_port=0, data_dir=str(tmp_path / "agg"),
                                    embedded_redis_maxmemory="2mb", replay_interval=0.2)).start()
    serving = health_pb2.HealthCheckResponse.SERVING
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = apb_grpc.AggregatorStub(channel)
            acknowledged, spooled, start = 0, 0, 0
            while spooled == 0 and start < 40_000:  # until Redis says it is full
                reply = stub.RecordEvents(batch(start), timeout=10)
                acknowledged += 50
                spooled += reply.spooled
                start += 50
            assert spooled, "Redis never filled up"
            for _ in range(3):  # a few more while full: spooled, acknowledged
                assert stub.RecordEvents(batch(start), timeout=10).spooled
                acknowledged += 50
                start += 50
            assert status(channel, REDIS_HEALTH) == serving  # Redis is not down...
            assert status(channel, REDIS_ROOM_HEALTH) != serving  # ...it is full
            assert metric(server.metrics_port, "ferlite_aggregator_redis_full") == 1
            assert metric(server.metrics_port, "ferlite_aggregator_redis_up") == 1
            server.core.store.r.config_set("maxmemory", "0")  # the operator raises maxmemory
            deadline = time.monotonic() + 30
            while server.core.spool.depth and time.monotonic() < deadline:
                time.sleep(0.2)
            assert server.core.spool.depth == 0
            assert status(channel, REDIS_ROOM_HEALTH) == serving
            assert metric(server.metrics_port, "ferlite_aggregator_redis_full") == 0
            stored = server.core.store.event_count("full-room")
            assert stored == acknowledged  # every acknowledged event, stored once
    finally:
        server.stop(0)


def test_the_spool_refuses_past_its_limit_instead_of_filling_the_disk(tmp_path) -> None:
    """Redis away: batches are spooled until spool_max_mb, then refused UNAVAILABLE (the caller keeps
    and resends them), never acknowledged without room on disk."""
    server = build(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), spool_max_mb=0.05,
                                    redis_url=f"redis://127.0.0.1:{free_port()}/0")).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = apb_grpc.AggregatorStub(channel)
            codes = []
            for k in range(40):
                try:
                    codes.append("spooled" if stub.RecordEvents(batch(k * 50), timeout=10).spooled else "stored")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)
                    assert "spool cannot take the batch" in exc.details()
        assert codes[0] == "spooled" and "UNAVAILABLE" in codes
        first_refused = codes.index("UNAVAILABLE")
        assert set(codes[:first_refused]) == {"spooled"}
        assert server.core.spool.bytes <= 0.05 * 2**20
        assert server.core.spool.depth == 50 * first_refused  # what was acknowledged is on disk
    finally:
        server.stop(0)


@pytest.mark.parametrize("value", ["0", "-1"])
def test_the_spool_limit_must_be_positive(value) -> None:
    from ferlite.services.common.config import ConfigError, load_config

    with pytest.raises(ConfigError):
        load_config(AggregatorConfig, ["--spool-max-mb", value])
