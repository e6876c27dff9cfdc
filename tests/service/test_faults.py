"""Fault injection with real processes: a service killed with SIGKILL mid-call, clients retrying
with the same event ids, and the embedded Redis dying with its parent."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import grpc

from ferlite.base.events import event_to_pb
from ferlite.base.labels import EMOTIONS
from ferlite.v1 import aggregator_pb2 as pb
from ferlite.v1 import aggregator_pb2_grpc as pb_grpc
from tests.support.events import event
from tests.support.procs import ServiceProcess, port_free
from tests.support.redis import free_port


def _aggregator(port: int, data_dir) -> ServiceProcess:
    return ServiceProcess([sys.executable, "-m", "ferlite", "serve", "aggregator", "--port", str(port),
                           "--metrics-port", "-1", "--data-dir", str(data_dir), "--model-dir", str(data_dir)]).start()


def _redis_pids(data_dir) -> list[str]:
    out = subprocess.run(["pgrep", "-f", f"redis-server.*{data_dir}"], capture_output=True, text=True).stdout
    return out.split()


def test_aggregator_killed_mid_stream_clients_retry_without_duplicates(tmp_path) -> None:
    port, data_dir = free_port(), tmp_path / "agg"
    service = _aggregator(port, data_dir)
    batches = [[event_to_pb(event(b * 10 + i, EMOTIONS[(b + i) % 7], ts=time.time())) for i in range(10)]
               for b in range(60)]
    retries = {"count": 0}
    done, accepted = threading.Event(), threading.Event()

    def client() -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.AggregatorStub(channel)
            for batch in batches:
                while True:  # retry the SAME batch (same event ids) until it is accepted
                    try:
                        stub.RecordEvents(pb.RecordEventsRequest(events=batch), timeout=2, wait_for_ready=False)
                        accepted.set()
                        break
                    except grpc.RpcError as exc:
                        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                        retries["count"] += 1
                        time.sleep(0.1)
                time.sleep(0.02)
        done.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert accepted.wait(30), "no batch accepted before the kill"
    service.proc.send_signal(signal.SIGKILL)  # mid-stream, possibly mid-call
    service.proc.wait()
    deadline = time.monotonic() + 10
    while _redis_pids(data_dir) and time.monotonic() < deadline:  # its embedded Redis follows it
        time.sleep(0.1)
    assert _redis_pids(data_dir) == [], "the embedded Redis outlived its aggregator"
    deadline = time.monotonic() + 10
    while not port_free(port) and time.monotonic() < deadline:  # the killed process's port, released
        time.sleep(0.05)
    service = _aggregator(port, data_dir)  # same port, same data: Redis reloads its AOF
    try:
        assert done.wait(60), "client did not finish"
        thread.join()
        assert retries["count"] > 0, "the kill was not noticed by the client"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            summary = pb_grpc.AggregatorStub(channel).GetSummary(
                pb.SummaryRequest(classroom_id="room-1", window_seconds=3600))
        assert summary.total_events == 600  # nothing lost, nothing counted twice
    finally:
        assert service.stop() == 0
    assert _redis_pids(data_dir) == []
