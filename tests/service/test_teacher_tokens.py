"""Issue 28 (scoped reading): a teacher's token reads its own classrooms and nothing of any other
one; the admin token reads all; a teacher's token cannot erase, record or reach the A/B policy."""

from __future__ import annotations

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

ADMIN, SERVICE = "admin-token-of-the-district", "pipeline-service-token-000"
TEACHER_A, TEACHER_BC = "teacher-of-room-a-000000", "teacher-of-rooms-b-and-c"


def test_a_teacher_reads_their_classrooms_and_nothing_else(tmp_path) -> None:
    teachers = tmp_path / "teacher-tokens"
    teachers.write_text(f"{TEACHER_A} room-a\n{TEACHER_BC} room-b,room-c\n")
    server = build(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), auth_token=ADMIN,
                                    service_token=SERVICE, teacher_tokens_file=str(teachers))).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = apb_grpc.AggregatorStub(channel)
            for room in ("room-a", "room-b"):
                evs = [event_to_pb(event(i, ts=time.time(), classroom=room)) for i in range(3)]
                for e in evs:
                    e.event_id, e.stream_id = f"{room}-{e.event_id}", f"{room}-cam"
                stub.RecordEvents(apb.RecordEventsRequest(events=evs), metadata=token_metadata(SERVICE), timeout=10)

            def summary(token: str, room: str) -> int:
                return stub.GetSummary(apb.SummaryRequest(classroom_id=room, window_seconds=600),
                                       metadata=token_metadata(token), timeout=10).total_events

            def code(call) -> grpc.StatusCode:
                with pytest.raises(grpc.RpcError) as err:
                    call()
                return err.value.code()

            assert summary(TEACHER_A, "room-a") == 3 and summary(TEACHER_BC, "room-b") == 3
            assert code(lambda: summary(TEACHER_A, "room-b")) == grpc.StatusCode.PERMISSION_DENIED
            assert code(lambda: summary(TEACHER_BC, "room-a")) == grpc.StatusCode.PERMISSION_DENIED
            assert summary(ADMIN, "room-a") == 3 and summary(ADMIN, "room-b") == 3
            assert code(lambda: summary("not-a-token-at-all-0000", "room-a")) == grpc.StatusCode.UNAUTHENTICATED
            follow = stub.StreamEvents(apb.StreamEventsRequest(classroom_id="room-b", since=1.0),
                                       metadata=token_metadata(TEACHER_A), timeout=10)
            assert code(lambda: next(iter(follow))) == grpc.StatusCode.PERMISSION_DENIED
            mine = stub.StreamEvents(apb.StreamEventsRequest(classroom_id="room-a", since=1.0),
                                     metadata=token_metadata(TEACHER_A), timeout=10)
            assert next(iter(mine)).classroom_id == "room-a"
            mine.cancel()
            erase = apb.EraseClassroomRequest(classroom_id="room-a")
            assert code(lambda: stub.EraseClassroom(erase, metadata=token_metadata(TEACHER_A), timeout=10)) == \
                grpc.StatusCode.UNAUTHENTICATED  # erasing is the admin's
            record = apb.RecordEventsRequest(events=[event_to_pb(event(9, ts=time.time(), classroom="room-a"))])
            assert code(lambda: stub.RecordEvents(record, metadata=token_metadata(TEACHER_A), timeout=10)) == \
                grpc.StatusCode.UNAUTHENTICATED  # recording is the pipeline's
    finally:
        server.stop(0)
