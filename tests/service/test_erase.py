"""Issue 28 (erase): `ferlite erase --classroom ID --yes` deletes every key of that classroom through
the aggregator's admin-only EraseClassroom call; afterwards nothing in Redis names the classroom
(keys, stream, minute counts, markers, the set of classrooms), another classroom is untouched, and
the call is refused without the admin token, without --yes, and while events wait in the spool."""

from __future__ import annotations

import subprocess
import sys
import time

import grpc
import pytest

from ferlite.base.events import event_to_pb
from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import build
from ferlite.services.common.security import token_metadata
from ferlite.v1 import aggregator_pb2 as apb
from ferlite.v1 import aggregator_pb2_grpc as apb_grpc
from tests.support.events import event
from tests.support.procs import ROOT

ADMIN = "admin-token-for-erase-tests"


def record(stub, classroom: str, start: int, n: int) -> None:
    now = time.time()
    evs = [event_to_pb(event(i, ts=now - 120 * (i % 3), classroom=classroom)) for i in range(start, start + n)]
    for e in evs:  # ids must differ between classrooms (a stream id per classroom)
        e.event_id = f"{classroom}-{e.event_id}"
        e.stream_id = f"{classroom}-cam"
    stub.RecordEvents(apb.RecordEventsRequest(events=evs), timeout=10)


def names(client, classroom: str) -> list[str]:
    """Every key that names the classroom, or whose content does (markers, the set of classrooms)."""
    def mentions(key: bytes) -> bool:
        kind = client.type(key).decode()
        in_hash = kind == "hash" and client.hget(key, "classroom") == classroom.encode()
        in_set = kind == "set" and bool(client.sismember(key, classroom))
        return classroom in key.decode() or in_hash or in_set

    return [key.decode() for key in client.scan_iter(count=500) if mentions(key)]


def test_erase_leaves_nothing_of_the_classroom(tmp_path) -> None:
    server = build(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), auth_token=ADMIN)).start()
    target = f"127.0.0.1:{server.port}"
    token_file = tmp_path / "auth-token"
    token_file.write_text(ADMIN)
    try:
        with grpc.insecure_channel(target) as channel:
            stub = apb_grpc.AggregatorStub(channel)
            record(stub, "room-erase", 0, 60)
            record(stub, "room-keep", 0, 40)
            eid = "room-erase-" + event_to_pb(event(3, classroom="room-erase")).event_id
            stub.SubmitFeedback(apb.FeedbackRequest(event_id=eid, true_label="sad"),
                                metadata=token_metadata(ADMIN), timeout=10)
            client = server.core.store.r
            assert names(client, "room-erase")
            with pytest.raises(grpc.RpcError) as err:  # the admin token is required
                stub.EraseClassroom(apb.EraseClassroomRequest(classroom_id="room-erase"), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        cli = [sys.executable, "-m", "ferlite", "erase", "--classroom", "room-erase", "--aggregator", target,
               "--token-file", str(token_file)]
        refused = subprocess.run(cli, capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert refused.returncode == 2 and "--yes" in refused.stderr and names(client, "room-erase")
        done = subprocess.run([*cli, "--yes"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert "erased classroom room-erase: 60 events" in done.stdout and "60 event markers" in done.stdout
        assert names(client, "room-erase") == []
        assert server.core.store.event_count("room-keep") == 40 and names(client, "room-keep")
        with grpc.insecure_channel(target) as channel:
            summary = apb_grpc.AggregatorStub(channel).GetSummary(
                apb.SummaryRequest(classroom_id="room-erase", window_seconds=3600), metadata=token_metadata(ADMIN),
                timeout=10)
        assert summary.total_events == 0
    finally:
        server.stop(0)


def test_erase_waits_for_the_spool(tmp_path) -> None:
    """Events spooled while Redis was away would come back after an erase: refused until replayed."""
    from tests.support.redis import free_port

    server = build(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), auth_token=ADMIN,
                                    redis_url=f"redis://127.0.0.1:{free_port()}/0")).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = apb_grpc.AggregatorStub(channel)
            record(stub, "room-erase", 0, 5)  # Redis is away: spooled
            assert server.core.spool.depth == 5
            with pytest.raises(grpc.RpcError) as err:
                stub.EraseClassroom(apb.EraseClassroomRequest(classroom_id="room-erase"),
                                    metadata=token_metadata(ADMIN), timeout=10)
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "spool" in err.value.details()
    finally:
        server.stop(0)
