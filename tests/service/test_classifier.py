"""The classifier against a REAL Triton server (the bundled tritonserver binary) hosting all four
architectures exported by `ferlite export`: routing, stickiness, shadow, admin, hot reload,
bad input, Triton killed and restarted, and a clean shutdown."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferlite.base.architectures import ARCHITECTURES
from ferlite.services.classifier.backend import SHM_DIR, SHM_PREFIX
from ferlite.services.classifier.config import ClassifierConfig
from ferlite.services.classifier.policy import champion_policy
from ferlite.services.classifier.repository import build_repository
from ferlite.services.classifier.server import build
from ferlite.v1 import classifier_pb2 as pb
from ferlite.v1 import classifier_pb2_grpc as pb_grpc
from ferlite.v1 import common_pb2
from tests.conftest import TINY_SIZE


def crop(value: float = 0.5, size: int = TINY_SIZE, dtype=np.float32) -> common_pb2.FaceCrop:
    rng = np.random.default_rng(int(value * 1000))
    if dtype == np.uint8:
        data = rng.integers(0, 256, (size, size, 3), dtype=np.uint8).tobytes()
        return common_pb2.FaceCrop(height=size, width=size, channels=3, dtype=common_pb2.CROP_DTYPE_UINT8, data=data)
    data = rng.random((size, size, 3), dtype=np.float32).astype("<f4").tobytes()
    return common_pb2.FaceCrop(height=size, width=size, channels=3, dtype=common_pb2.CROP_DTYPE_FLOAT32, data=data)


def test_repository_flavours(exported_models, tmp_path) -> None:
    embedded = build_repository(exported_models, tmp_path / "e", "embedded", require_all=True)
    assert [m.architecture for m in embedded] == list(ARCHITECTURES)
    for arch in ARCHITECTURES:
        cfg = (tmp_path / "e" / arch / "config.pbtxt").read_text()
        assert 'backend: "python"' in cfg and "dynamic_batching" in cfg
        assert f"data_type: TYPE_UINT8 dims: [ {TINY_SIZE}, {TINY_SIZE}, 3 ]" in cfg  # pixels through shm
        version = tmp_path / "e" / arch / "1"
        assert (version / "model.py").exists() and (version / "model.onnx").exists()
        assert 'key: "intra_op_threads" value: { string_value: "1" }' in cfg and "count: 1 kind: KIND_CPU" in cfg
    build_repository(exported_models, tmp_path / "t", "embedded", instances=2, threads=2)
    cfg = (tmp_path / "t" / "mobilenet_v2" / "config.pbtxt").read_text()
    assert 'key: "intra_op_threads" value: { string_value: "2" }' in cfg and "count: 2 kind: KIND_CPU" in cfg
    build_repository(exported_models, tmp_path / "c", "cluster", instances=2, kind="KIND_GPU")
    cfg = (tmp_path / "c" / "efficientnet_b0" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in cfg and "count: 2 kind: KIND_GPU" in cfg and "preferred_batch_size" in cfg
    assert f"data_type: TYPE_UINT8 dims: [ {TINY_SIZE}, {TINY_SIZE}, 3 ]" in cfg  # pixels: the graph normalises
    assert 'key: "flip_tta" value: { string_value: "0" }' in cfg  # these test models do not flip
    assert not (tmp_path / "c" / "efficientnet_b0" / "1" / "model.py").exists()
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        build_repository(tmp_path / "none", tmp_path / "x")


@pytest.fixture(scope="module")
def service(exported_models, tmp_path_factory):
    work = tmp_path_factory.mktemp("classifier")
    policy = work / "policy.json"
    policy.write_text(json.dumps({"weights": {a: 1 for a in ARCHITECTURES}, "sticky": True}))
    config = ClassifierConfig(min_val_accuracy=0.0,
                              port=0, metrics_port=0, model_dir=str(exported_models),
                                  triton_metrics_port=0, repository_dir=str(work / "triton"),
                              policy_file=str(policy), readiness_interval=0.2, timeout_seconds=3, max_batch=16)
    server = build(config)
    server.policies.interval = 0.1
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield server, channel, policy
    channel.close()
    server.stop(1)


def _set(channel, **policy) -> pb.ABPolicy:
    return pb_grpc.ABAdminStub(channel).SetPolicy(pb.SetPolicyRequest(policy=pb.ABPolicy(**policy)))


def test_classify_answers_with_architecture_and_version(service) -> None:
    _, channel, _ = service
    stub = pb_grpc.ClassifierStub(channel)
    for arch in ARCHITECTURES:
        reply = stub.Classify(pb.ClassifyRequest(crops=[crop(0.1), crop(0.2, dtype=np.uint8)], architecture=arch))
        assert reply.model.architecture == arch and reply.model.model_version == "1"
        assert len(reply.results) == 2
        for r in reply.results:
            assert len(r.probabilities) == 7 and math.isclose(sum(r.probabilities), 1.0, rel_tol=1e-4)
            assert r.confidence == max(r.probabilities)


def test_weighted_routing_and_stickiness(service) -> None:
    _, channel, _ = service
    stub = pb_grpc.ClassifierStub(channel)
    _set(channel, weights={"mobilenet_v2": 3, "efficientnet_b0": 1}, sticky=False)
    n = 240
    counts = Counter(stub.Classify(pb.ClassifyRequest(crops=[crop()])).model.architecture for _ in range(n))
    assert set(counts) == {"mobilenet_v2", "efficientnet_b0"}
    assert abs(counts["mobilenet_v2"] - 0.75 * n) <= 4 * math.sqrt(n * 0.75 * 0.25)
    _set(channel, weights={a: 1 for a in ARCHITECTURES}, sticky=True)
    for key in ("room-1/cam-1", "room-2/cam-7", "room-3/cam-2"):
        arms = {stub.Classify(pb.ClassifyRequest(crops=[crop()], routing_key=key)).model.architecture
                for _ in range(10)}
        assert len(arms) == 1


def test_shadow_scores_all_other_arms_without_changing_the_answer(service) -> None:
    _, channel, _ = service
    stub = pb_grpc.ClassifierStub(channel)
    _set(channel, weights={"mobilenet_v3_small": 1}, sticky=True, shadow_fraction=1.0)
    reply = stub.Classify(pb.ClassifyRequest(crops=[crop(), crop(0.9)], routing_key="k"))
    assert reply.model.architecture == "mobilenet_v3_small" and reply.shadow_scored
    assert sorted(s.model.architecture for s in reply.shadow) == sorted(set(ARCHITECTURES) - {"mobilenet_v3_small"})
    assert all(len(s.results) == 2 for s in reply.shadow)
    _set(channel, weights={a: 1 for a in ARCHITECTURES}, sticky=True, shadow_fraction=0.0)
    assert not stub.Classify(pb.ClassifyRequest(crops=[crop()])).shadow_scored


def test_admin_rejects_bad_policies_and_file_hot_reloads(service) -> None:
    server, channel, policy_file = service
    admin = pb_grpc.ABAdminStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        _set(channel, weights={"mobilenet_v2": -1.0})
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "non-negative" in err.value.details()
    policy_file.write_text(json.dumps({"weights": {"mobilenet_v3_large": 1}, "sticky": False}))
    deadline = time.monotonic() + 5
    while dict(admin.GetPolicy(pb.GetPolicyRequest()).weights) != {"mobilenet_v3_large": 1.0}:
        assert time.monotonic() < deadline, "policy file was not reloaded"
        time.sleep(0.05)
    reply = pb_grpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(crops=[crop()]))
    assert reply.model.architecture == "mobilenet_v3_large"
    metrics = server.metrics.registry
    assert metrics.get_sample_value("ferlite_classifier_ab_weight", {"architecture": "mobilenet_v3_large"}) == 1.0
    _set(channel, weights={a: 1 for a in ARCHITECTURES}, sticky=True)


@pytest.mark.parametrize(("crops", "needle"), [
    ([], "the batch is empty"),
    ([crop()] * 17, "17 crops exceed the limit of 16"),
    ([common_pb2.FaceCrop(height=TINY_SIZE, width=TINY_SIZE, channels=3, dtype=common_pb2.CROP_DTYPE_FLOAT32,
                          data=b"\x00" * 10)], "10 bytes, expected"),
    ([crop(), crop(size=48)], "differs from crops[0]"),
    ([common_pb2.FaceCrop(height=TINY_SIZE, width=TINY_SIZE, channels=3, data=b"")], "dtype must be"),
    ([common_pb2.FaceCrop(height=TINY_SIZE, width=TINY_SIZE, channels=3, dtype=common_pb2.CROP_DTYPE_FLOAT32,
                          data=np.full((TINY_SIZE, TINY_SIZE, 3), np.nan, "<f4").tobytes())], "finite and in [0, 1]"),
])
def test_bad_input_is_invalid_argument(service, crops, needle) -> None:
    _, channel, _ = service
    with pytest.raises(grpc.RpcError) as err:
        pb_grpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(crops=crops, architecture="mobilenet_v2"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()


def test_crops_of_another_size_are_resized_for_the_model(service) -> None:
    _, channel, _ = service
    reply = pb_grpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(crops=[crop(size=48)] * 2,
                                                                        architecture="mobilenet_v2"))
    assert len(reply.results) == 2 and len(reply.results[0].probabilities) == 7


def _health(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status


def test_triton_killed_then_restarted(service) -> None:
    server, channel, _ = service
    stub = pb_grpc.ClassifierStub(channel)
    assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
    arch = sorted(server.backend.ready)[0]
    pixels = np.zeros((1, TINY_SIZE, TINY_SIZE, 3), np.uint8)
    server.backend.infer(arch, pixels, timeout=5)  # this thread's region, registered with this Triton
    region = server.backend.shared._local.region
    server.triton.kill()
    killed = time.monotonic()
    while _health(channel) != health_pb2.HealthCheckResponse.NOT_SERVING:
        assert time.monotonic() - killed < 2.0, "health did not turn NOT_SERVING within 2 s"
        time.sleep(0.05)
    live = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="liveness"), timeout=2)
    assert live.status == health_pb2.HealthCheckResponse.SERVING, "liveness must not follow Triton"
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.Classify(pb.ClassifyRequest(crops=[crop()]), timeout=10)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert time.monotonic() - start < 1.0, "a request with Triton down must fail fast"
    # Nobody restarts it by hand: the classifier's watcher does, and health follows.
    deadline = time.monotonic() + 60
    while _health(channel) != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "Triton was not restarted (or health did not follow) within 60 s"
        time.sleep(0.1)
    assert stub.Classify(pb.ClassifyRequest(crops=[crop()])).model.architecture in ARCHITECTURES
    # The new Triton knew none of the classifier's shared-memory regions: this thread's, used before
    # the kill, is registered again and carries the batch.
    server.backend.infer(arch, pixels, timeout=5)
    assert server.backend.shared._local.region is region
    assert region.name in str(server.backend.client.get_system_shared_memory_status())
    # The restarter counts a restart once its restart call returns; the readiness poller may see the
    # new Triton a moment before that, so the count can trail SERVING by that moment.
    restarts = "ferlite_classifier_embedded_triton_restarts_total"
    deadline = time.monotonic() + 10
    while server.metrics.registry.get_sample_value(restarts) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.metrics.registry.get_sample_value(restarts) >= 1


def test_crops_go_to_triton_through_private_shared_memory(service) -> None:
    """The same answers as inside the gRPC message; the region is registered with Triton, only its
    owner can read it, and it holds no pixels between calls."""
    server, _, _ = service
    backend = server.backend
    arch = sorted(backend.ready)[0]
    batch = np.random.default_rng(5).integers(0, 256, (3, TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    through_shm = backend.infer(arch, batch, timeout=5).probabilities
    shared, backend.shared = backend.shared, None
    try:
        in_message = backend.infer(arch, batch, timeout=5).probabilities
    finally:
        backend.shared = shared
    np.testing.assert_allclose(through_shm, in_message, atol=1e-6)
    region = shared._local.region
    assert region.registered and region.name in str(backend.client.get_system_shared_memory_status())
    path = Path(SHM_DIR) / region.name
    assert path.stat().st_mode & 0o777 == 0o600
    assert not any(path.read_bytes()), "face pixels left in the region after the call"


def test_shared_memory_guard_reads_memory_maps_only_when_a_region_appears(service) -> None:
    """The guard that keeps Triton's regions 0600 looks at /dev/shm's names every 0.2 s but reads
    the processes' memory maps (milliseconds, under every call's feet) only for a new name."""
    server, _, _ = service
    triton = server.triton
    scans = []
    real = triton._mapped_regions
    triton._mapped_regions = lambda *a, **k: scans.append(time.monotonic()) or real(*a, **k)
    new = Path(SHM_DIR) / "triton_python_backend_shm_region_test-guard"
    try:
        time.sleep(1.2)
        assert len(scans) <= 1, f"{len(scans)} scans of the memory maps in 1.2 s with no new region"
        before = len(scans)
        new.write_bytes(b"\0" * 16)
        deadline = time.monotonic() + 2
        while len(scans) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(scans) > before, "a new region was not looked at"
    finally:
        new.unlink(missing_ok=True)
        del triton._mapped_regions


def test_regions_of_a_dead_classifier_are_removed_at_start(tmp_path) -> None:
    from ferlite.services.classifier.backend import remove_orphan_regions

    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = Path(SHM_DIR) / f"{SHM_PREFIX}{dead.pid}_0"
    alive = Path(SHM_DIR) / f"{SHM_PREFIX}{os.getpid()}_999"
    for path in (orphan, alive):
        path.write_bytes(b"\0" * 16)
    try:
        assert orphan.name in remove_orphan_regions()
        assert not orphan.exists() and alive.exists()
    finally:
        orphan.unlink(missing_ok=True)
        alive.unlink(missing_ok=True)


def test_stop_leaves_no_process_or_shared_memory(exported_models, tmp_path) -> None:
    config = ClassifierConfig(min_val_accuracy=0.0,
                              port=0, metrics_port=-1, model_dir=str(exported_models),
                                  triton_metrics_port=0, repository_dir=str(tmp_path / "t"))
    shm_before = set(os.listdir("/dev/shm"))
    server = build(config).start()
    pid = server.triton.proc.pid
    # No policy file: the default policy is the champion of the served models' validation figures.
    validation = {a: m.val_accuracy for a, m in server.core.metadata.items()}
    assert server.policies.policy.weights == champion_policy(validation).weights
    assert max(server.policies.policy.weights.values()) >= 0.9
    # Another Triton instance's region, appearing after ours started: stop must leave it alone.
    other = Path("/dev/shm") / "triton_python_backend_shm_region_another-instance"
    other.write_bytes(b"\0" * 16)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        pb_grpc.ClassifierStub(channel).Classify(pb.ClassifyRequest(crops=[crop()]))
    ours = {n for n in set(os.listdir("/dev/shm")) - shm_before if "triton" in n or n.startswith(SHM_PREFIX)}
    ours -= {other.name}
    assert ours, "the Python backend made no shared-memory region"
    assert any(n.startswith(SHM_PREFIX) for n in ours), "the crops did not go through shared memory"
    for name in ours:  # crops pass through these: nobody else may read them
        assert os.stat(f"/dev/shm/{name}").st_mode & 0o077 == 0, (name, oct(os.stat(f"/dev/shm/{name}").st_mode))
    try:
        server.stop(1)
        assert server.triton.proc.poll() is not None
        leftover = subprocess.run(["pgrep", "-g", str(pid)], capture_output=True, text=True).stdout.strip()
        assert leftover == "", f"processes left in Triton's group: {leftover}"
        assert {n for n in set(os.listdir("/dev/shm")) - shm_before
                if "triton" in n or n.startswith(SHM_PREFIX)} == {other.name}
    finally:
        other.unlink(missing_ok=True)
