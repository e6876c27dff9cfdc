"""The shared server plumbing, exercised through a real process and real outside tools."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferlite.services.common.channels import ChannelSecurity, open_channel
from ferlite.services.common.logs import JsonFormatter
from tests.support.procs import ServiceProcess, require_tool
from tests.support.sleepy import SLEEP_METHOD, SleepyConfig, build

SLEEPY = [sys.executable, "-m", "tests.support.sleepy", "--port", "0", "--metrics-port", "0"]


@pytest.fixture
def sleepy():
    service = ServiceProcess([*SLEEPY, "--grace-seconds", "10"]).start()
    yield service
    service.stop()


def _sleep_call(channel: grpc.Channel, seconds: float, timeout: float = 30.0) -> bytes:
    call = channel.unary_unary(SLEEP_METHOD)
    return call(str(seconds).encode(), timeout=timeout)


def test_grpcurl_sees_health_serving(sleepy) -> None:
    grpcurl = require_tool("grpcurl")
    result = subprocess.run([grpcurl, "-plaintext", sleepy.target, "grpc.health.v1.Health/Check"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "SERVING"
    listed = subprocess.run([grpcurl, "-plaintext", sleepy.target, "list"],
                            capture_output=True, text=True, timeout=30)
    assert "grpc.health.v1.Health" in listed.stdout


def test_metrics_pass_promtool(sleepy) -> None:
    promtool = require_tool("promtool")
    with grpc.insecure_channel(sleepy.target) as channel:
        assert _sleep_call(channel, 0.01) == b"slept 0.01"
        with pytest.raises(grpc.RpcError) as err:
            _sleep_call(channel, "soon")  # type: ignore[arg-type]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # grpc.aio sends an aborted call's status before the handler's `finally` records it, so the
    # counter may trail the client's answer by a moment: scrape until the call is counted.
    deadline = time.monotonic() + 5
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{sleepy.metrics_port}/metrics", timeout=10).read()
        body = text.decode()
        if 'ferlite_sleepy_rpc_in_flight{method="Sleep"} 0.0' in body or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert 'ferlite_sleepy_rpc_handled_total{code="OK",method="Sleep"} 1.0' in body
    assert 'ferlite_sleepy_rpc_handled_total{code="INVALID_ARGUMENT",method="Sleep"} 1.0' in body
    assert 'ferlite_sleepy_rpc_duration_seconds_count{method="Sleep"} 2.0' in body
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sigterm_lets_the_slow_call_finish_then_exits_0(sleepy) -> None:
    outcome: dict[str, object] = {}
    with grpc.insecure_channel(sleepy.target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)

        def slow() -> None:
            try:
                outcome["reply"] = _sleep_call(channel, 2.0)
            except grpc.RpcError as exc:
                outcome["error"] = exc.code()

        caller = threading.Thread(target=slow)
        caller.start()
        wait_for_line(sleepy, '"msg":"sleeping"')  # the call is in flight
        sleepy.proc.send_signal(signal.SIGTERM)
        wait_for_line(sleepy, '"msg":"draining"')
        with pytest.raises(grpc.RpcError) as refused:  # draining: new calls are refused
            _sleep_call(channel, 0.0, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        caller.join(timeout=15)
    assert outcome == {"reply": b"slept 2.0"}
    assert sleepy.proc.wait(timeout=15) == 0
    assert any('"msg":"draining"' in line for line in sleepy.lines)


def wait_for_line(service, needle: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in service.lines):
        assert time.monotonic() < deadline, f"no {needle} line within {timeout:.0f} s"
        time.sleep(0.02)


def test_call_past_its_deadline_is_cut_at_the_deadline(sleepy) -> None:
    with grpc.insecure_channel(sleepy.target) as channel:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            _sleep_call(channel, 3.0, timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 2.0


def _health(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status


def test_tls_and_mtls(certs: Path) -> None:
    tls = SleepyConfig(port=0, metrics_port=-1, tls_cert=str(certs / "server.pem"),
                       tls_key=str(certs / "server.key"))
    with build(tls) as server:
        target = f"localhost:{server.port}"
        with open_channel(target, ChannelSecurity(ca=str(certs / "ca.pem"))) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(target) as plain, pytest.raises(grpc.RpcError):
            _health(plain)

    mtls = SleepyConfig(port=0, metrics_port=-1, tls_cert=str(certs / "server.pem"),
                        tls_key=str(certs / "server.key"), tls_client_ca=str(certs / "ca.pem"))
    with build(mtls) as server:
        target = f"localhost:{server.port}"
        with open_channel(target, ChannelSecurity(ca=str(certs / "ca.pem"))) as ch, \
                pytest.raises(grpc.RpcError):
            _health(ch)  # no client certificate: refused
        client = ChannelSecurity(ca=str(certs / "ca.pem"), cert=str(certs / "client.pem"),
                                 key=str(certs / "client.key"))
        with open_channel(target, client) as ch:
            assert _health(ch) == health_pb2.HealthCheckResponse.SERVING


def test_json_logs_redact_pixels() -> None:
    import numpy as np

    record = logging.makeLogRecord({"msg": "face", "levelname": "INFO", "name": "t",
                                    "crop": b"\x00" * 50, "frame": np.zeros((4, 4, 3))})
    line = json.loads(JsonFormatter("test").format(record))
    assert line["crop"] == "<50 bytes redacted>"
    assert line["frame"] == "<array (4, 4, 3) redacted>"


def test_restarter_survives_a_failed_restart_and_stops_from_its_own_thread() -> None:
    """A restart that fails (and whose failure path stops the child) must not end supervision."""
    import threading

    from ferlite.services.common.processes import Restarter

    state = {"dead": True, "attempts": 0}
    done = threading.Event()

    def restart() -> None:
        state["attempts"] += 1
        if state["attempts"] == 1:
            raise RuntimeError("did not start")
        state["dead"] = False
        done.set()

    r = Restarter("child", lambda: state["dead"], restart, interval=0.01, first_backoff=0.01).start()
    assert done.wait(5) and state["attempts"] == 2
    r.stop()
    stopper = Restarter("child", lambda: True, lambda: None, interval=0.01, first_backoff=0.01)
    stopper.restart = stopper.stop   # stopping from inside the loop must not raise
    stopper.start()
    stopper._thread.join(5)  # it ends on its own (a fixed sleep here could not tell "slow" from "never")
    assert not stopper._thread.is_alive()


def test_idle_metrics_connections_hold_bounded_threads_and_time_out() -> None:
    """Issue 25: 500 idle connections to /metrics made 500 threads that never ended. Now at most
    METRICS_MAX_THREADS are served at once, each idle one is dropped after METRICS_IDLE_SECONDS, and
    a scrape succeeds again once they are gone."""
    import socket
    import threading
    import urllib.request

    from prometheus_client import CollectorRegistry

    from ferlite.services.common.metrics import METRICS_IDLE_SECONDS, METRICS_MAX_THREADS, serve_metrics

    server, port = serve_metrics(CollectorRegistry(), "127.0.0.1", 0)
    before = threading.active_count()
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.5)
        assert threading.active_count() - before <= METRICS_MAX_THREADS
        time.sleep(METRICS_IDLE_SECONDS + 1.0)
        for conn in idle:  # every idle connection has been closed by the server
            conn.settimeout(1.0)
            assert conn.recv(1) == b""
        assert threading.active_count() - before <= 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
            assert reply.status == 200
    finally:
        for conn in idle:
            conn.close()
        server.shutdown()
        server.server_close()


def test_a_tls_service_answers_probes_on_a_plaintext_health_only_port(certs) -> None:
    """Issue 27 (S7): under TLS the chart's probes fell back to a TCP connect, which passes for a
    server that is up but not serving. The health port answers grpc.health.v1 in plaintext (what the
    kubelet's gRPC probe speaks), follows the server's states, and serves nothing else."""
    server = build(SleepyConfig(port=0, metrics_port=-1, health_port=0, tls_cert=str(certs / "server.pem"),
                                tls_key=str(certs / "server.key"))).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as plain:
            health = health_pb2_grpc.HealthStub(plain)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError) as err:  # the service itself is not on this port
                _sleep_call(plain, 0.0, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            server.set_serving("", False)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
                health_pb2.HealthCheckResponse.NOT_SERVING
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as not_tls, pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(not_tls).Check(health_pb2.HealthCheckRequest(), timeout=3)
    finally:
        server.stop(0)
