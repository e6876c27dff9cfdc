"""End to end with real processes: `ferlite up`, a short clip through `ferlite stream`, events in
Redis checked against the faces seen, then a clean shutdown that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from ferlite.app.sample_clip import make_clip
from ferlite.app.stack import StackConfig, free_port_offset, serving
from ferlite.base.architectures import ARCHITECTURES
from tests.support.procs import ROOT, port_free
from tests.support.stack import RunningUp


def test_up_without_models_says_what_to_run(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "ferlite", "up", "--models", str(tmp_path / "none"),
                             "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "ferlite up --bootstrap" in result.stderr and "ferlite train --data" in result.stderr


def test_stack_up_stream_and_clean_shutdown(exported_models, tmp_path) -> None:
    offset = free_port_offset()
    ports = StackConfig.with_port_offset(offset)
    data_dir = tmp_path / "var"
    shm_before = set(os.listdir("/dev/shm"))
    up = RunningUp("--models", str(exported_models), "--data-dir", str(data_dir), "--port-offset", str(offset))
    lines = up.lines
    try:
        up.wait_up()
        clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, scenes="portrait,classroom")
        summary_path = tmp_path / "summary.json"
        # The command `ferlite up` prints, pasted as a newcomer would (issue 30): it names this stack's
        # port offset, from which the client finds its address and camera token (its run folder is
        # elsewhere: --data-dir), so it reaches this stack with a camera token.
        printed = up.line_starting("stream a video:")
        command = printed.split(":", 1)[1].split("(Ctrl-C")[0].split()
        assert command[:2] == ["ferlite", "stream"] and command[-2:] == ["--port-offset", str(offset)]
        command = [c.replace("VIDEO", str(clip)).replace("ROOM", "e2e-room") for c in command[2:]]
        stream = subprocess.run(
            [sys.executable, "-m", "ferlite", "stream", *command,
             "--fps", "10", "--json-file", str(summary_path), "--output", str(tmp_path / "annotated.mp4"),
             "--no-record-off-path"],  # one Process call per frame (the smile test below streams)
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert stream.returncode == 0, stream.stderr[-2000:]
        summary = json.loads(summary_path.read_text())
        assert summary["frames"] == 20 and summary["failed_frames"] == 0
        assert summary["faces"] >= 10  # the portrait half alone has one face per frame
        assert summary["recorded_faces"] == summary["faces"]
        assert sum(summary["models"].values()) == summary["faces"]  # every face names the model that labelled it
        assert set(summary["models"]) <= set(ARCHITECTURES)
        assert summary["aggregator_total_events"] == summary["faces"]
        assert sum(summary["aggregator_distribution"].values()) == summary["faces"]
        assert (tmp_path / "annotated.mp4").stat().st_size > 0
        assert (tmp_path / "annotated.mp4").stat().st_mode & 0o077 == 0  # faces: owner only

        client = redis.Redis(unix_socket_path=str(data_dir / "aggregator" / "redis" / "redis.sock"))
        assert client.xlen("ferlite:stream:e2e-room") == summary["faces"]
        for key in client.scan_iter("*"):  # no pixels anywhere: only small JSON/text values
            kind = client.type(key)
            if kind == b"stream":
                for _, fields in client.xrange(key):
                    assert set(fields) == {b"event"} and len(fields[b"event"]) < 1000
                    event = json.loads(fields[b"event"])
                    assert set(event) >= {"event_id", "label", "probabilities", "box", "track_id"}
                    assert not {"crop", "pixels", "image", "frame"} & set(event)
            elif kind == b"hash":
                assert all(len(v) < 200 for v in client.hgetall(key).values())
        client.close()
    finally:
        code = up.stop()
    assert code == 0, "".join(lines[-30:])
    assert any(line.startswith("stopped:") for line in lines)
    deadline, left = time.monotonic() + 10, ["?"]
    while left and time.monotonic() < deadline:  # stopped children may take a moment to be reaped
        left = subprocess.run(["pgrep", "-f", str(data_dir)], capture_output=True, text=True).stdout.split()
        time.sleep(0.1)
    assert left == [], f"processes left: {left}"
    for port in ports.ports():
        assert port_free(port), f"port {port} still bound"
    assert {n for n in set(os.listdir("/dev/shm")) - shm_before if "triton" in n} == set()
    # Privacy: no image bytes in any service log (raw JPEG/PNG, or their base64 forms).
    image_signatures = (b"\xff\xd8\xff", b"\x89PNG", b"/9j/", b"iVBORw0KGgo")
    logs = list((data_dir / "logs").glob("*.log"))
    assert len(logs) == 4  # aggregator, classifier, face detection, dashboard
    for log in logs:
        content = log.read_bytes()
        assert content and not any(sig in content for sig in image_signatures), log.name
        assert max(len(line) for line in content.splitlines()) < 4000, f"{log.name} has a suspiciously long line"


def test_shipped_pack_reads_a_real_smile(tmp_path) -> None:
    """The model pack in the repository, served by the whole local stack (no --models: the
    default), labels scikit-image's smiling astronaut `happy`, not uncertain. The A/B policy sends
    the stream to the pack's validation pick, so the test does not depend on which arm
    the stream id hashes to."""
    from ferlite.base.model_metadata import PACK_DIR, find_models

    if len(find_models(PACK_DIR)) != 4:
        pytest.fail(f"the model pack in {PACK_DIR} is incomplete")
    offset = free_port_offset()
    ports = StackConfig.with_port_offset(offset)
    data_dir = tmp_path / "var"
    pick = max(find_models(PACK_DIR), key=lambda m: m.validation["accuracy"]).architecture
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"weights": {pick: 1}}))
    up = RunningUp("--data-dir", str(data_dir), "--port-offset", str(offset), "--policy-file", str(policy),
                   env={"FERLITE_CLASSIFIER_MIN_VAL_ACCURACY": "0.45"})
    try:
        up.wait_up()
        clip = make_clip(tmp_path / "astronaut.mp4", seconds=2.0, scenes="portrait")
        summary_path = tmp_path / "summary.json"
        stream = subprocess.run(
            [sys.executable, "-m", "ferlite", "stream", "--source", str(clip), "--classroom", "smile-room",
             "--target", f"127.0.0.1:{ports.facedetect_port}", "--aggregator", f"127.0.0.1:{ports.aggregator_port}",
             "--fps", "10", "--json-file", str(summary_path), "--token-file", str(data_dir / "auth-token"),
             "--record-off-path"],  # ProcessStream: labels first, events acknowledged after
            cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert stream.returncode == 0, stream.stderr[-2000:]
        summary = json.loads(summary_path.read_text())
        assert summary["faces"] >= 15 and summary["recorded_faces"] == summary["faces"]  # every frame acknowledged
        assert summary["models"] == {pick: summary["faces"]}
        client = redis.Redis(unix_socket_path=str(data_dir / "aggregator" / "redis" / "redis.sock"))
        events = [json.loads(f[b"event"]) for _, f in client.xrange("ferlite:stream:smile-room")]
        client.close()
        assert len(events) == summary["faces"]  # acknowledged before the command returned: all in Redis
        happy = [e for e in events if e["label"] == "happy" and not e["uncertain"]]
        arms = {e["architecture"] for e in events}
        assert len(happy) >= 0.8 * len(events), (len(happy), len(events), arms,
                                                 sorted({(e["label"], round(e["confidence"], 2)) for e in events}))
    finally:
        assert up.stop() == 0, up.tail()


def test_busy_ports_and_bad_offsets_are_refused_and_the_running_token_is_kept(tmp_path) -> None:
    import socket

    offset = free_port_offset()
    ports = StackConfig.with_port_offset(offset)
    token = tmp_path / "auth-token"
    token.write_text("token-of-the-running-stack")
    with socket.socket() as other:   # "another stack" answering on our facedetect port
        other.bind(("127.0.0.1", ports.facedetect_port))
        other.listen()
        busy = subprocess.run([sys.executable, "-m", "ferlite", "demo", "--data-dir", str(tmp_path), "--port-offset",
                               str(offset)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert busy.returncode == 2, busy.stderr
    assert f"facedetect {ports.facedetect_port}" in busy.stderr and "--port-offset" in busy.stderr
    assert token.read_text() == "token-of-the-running-stack"
    far = subprocess.run([sys.executable, "-m", "ferlite", "up", "--data-dir", str(tmp_path), "--port-offset",
                          "100000"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert far.returncode == 2 and "out of range" in far.stderr and "Traceback" not in far.stderr


def test_up_restarts_a_service_killed_with_sigkill(exported_models, tmp_path) -> None:
    offset = free_port_offset()
    ports = StackConfig.with_port_offset(offset)
    data_dir = tmp_path / "var"
    up = RunningUp("--models", str(exported_models), "--data-dir", str(data_dir), "--port-offset", str(offset))
    lines = up.lines
    try:
        up.wait_up()
        took = {}
        for name, port in (("aggregator", ports.aggregator_port), ("facedetect", ports.facedetect_port),
                           ("classifier", ports.classifier_port)):
            pid = subprocess.run(["pgrep", "-f", f"serve {name} .*--port {port}"], capture_output=True,
                                 text=True).stdout.split()
            assert len(pid) == 1, (name, pid)
            os.kill(int(pid[0]), signal.SIGKILL)
            killed = time.monotonic()
            # The classifier brings its embedded Triton and models back up with it: slower.
            deadline = killed + (90 if name == "classifier" else 30)
            while not serving(f"127.0.0.1:{port}"):
                assert up.proc.poll() is None, "ferlite up gave up:\n" + up.tail()
                assert time.monotonic() < deadline, f"{name} not serving again:\n" + "".join(lines[-30:])
                time.sleep(0.3)
            took[name] = round(time.monotonic() - killed, 1)
        print("serving again after SIGKILL, seconds:", took)
        deadline = time.monotonic() + 10  # the line follows the health check by a moment
        while sum("is serving again" in line for line in lines) < 3:
            assert time.monotonic() < deadline, up.tail()
            time.sleep(0.1)
    finally:
        assert up.stop() == 0, up.tail()


HEALTH_SERVER = """
import sys, time, grpc
from concurrent import futures
from grpc_health.v1 import health, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
server.add_insecure_port(f"127.0.0.1:{sys.argv[1]}")
server.start()
time.sleep(60)
"""


def test_start_up_trusts_only_the_child_it_started() -> None:
    """A port taken by another program after the free-port check answers SERVING; the stack must
    not take that answer for its own service's."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    from ferlite.app.stack import StackError, wait_healthy
    from tests.support.redis import free_port

    port = free_port()
    impostor = grpc.server(futures.ThreadPoolExecutor(2))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), impostor)
    impostor.add_insecure_port(f"127.0.0.1:{port}")
    impostor.start()
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(StackError, match="not from the service started here"):
            wait_healthy(f"127.0.0.1:{port}", 10, ours)
    finally:
        ours.kill()
        impostor.stop(0)
    port = free_port()
    child = subprocess.Popen([sys.executable, "-c", HEALTH_SERVER, str(port)])
    try:
        wait_healthy(f"127.0.0.1:{port}", 30, child)  # the child itself answers: accepted
    finally:
        child.kill()
