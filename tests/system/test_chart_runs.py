"""The chart, run: its rendered workloads started as local processes by a kubelet double
(tests/support/kubelet.py: no kube-apiserver or kubelet can run here), every probe the manifests
declare checked against the running process, and a frame streamed through the rendered face
detection classified by the rendered classifier on the rendered Triton and recorded by the
rendered aggregator in the rendered Redis, with the tokens from the rendered Secrets."""

from __future__ import annotations

import json
import time
import urllib.request

import grpc
import pytest
import tritonclient.grpc
from tritonclient.utils import InferenceServerException

from ferlite.app.client import CameraSession
from ferlite.app.sample_clip import sample_jpegs
from ferlite.base.model_metadata import PACK_DIR
from ferlite.services.common.channels import ChannelSecurity
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc
from tests.support.chart import render
from tests.support.kubelet import LocalKubelet

ORDER = ["ferlite-redis", "ferlite-triton", "ferlite-aggregator", "ferlite-classifier", "ferlite-facedetect",
         "ferlite-dashboard"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # Two aggregator replicas would share this one machine's ports; one of each is enough to run
    # every rendered command, env and probe.
    values = {"aggregator": {"replicas": 1}, "facedetect": {"autoscaling": {"enabled": False}, "replicas": 1},
              "classifier": {"autoscaling": {"enabled": False}, "replicas": 1},
              "dashboard": {"replicas": 1}, "cameras": {"classrooms": ["chart-room", "other-room"]}}
    docs = render(values)
    kubelet = LocalKubelet(docs, tmp_path_factory.mktemp("cluster"), {"/opt/ferlite/models": PACK_DIR})
    assert set(kubelet.pods) == set(ORDER)
    try:
        for name in ORDER:
            kubelet.start(name)
            kubelet.wait_ready(name)
        yield kubelet
    finally:
        codes = kubelet.stop()
        assert all(c == [0] for c in codes.values()), codes


def test_every_declared_probe_passes_against_the_running_workload(cluster) -> None:
    for name in ORDER:
        assert cluster.probe(name, "readinessProbe"), name
        assert cluster.probe(name, "livenessProbe"), name
    # The rendered probes ask what they should: liveness the "liveness" service, readiness the server.
    classifier = cluster.pods["ferlite-classifier"].spec["containers"][0]
    assert classifier["livenessProbe"]["grpc"]["service"] == "liveness"
    assert "service" not in classifier["readinessProbe"]["grpc"]


def test_a_frame_through_the_rendered_stack_is_classified_and_recorded(cluster) -> None:
    auth, cameras = cluster.secrets["ferlite-auth"], cluster.secrets["ferlite-cameras"]
    target = f"127.0.0.1:{cluster.service_ports[('ferlite-facedetect', 50051)]}"
    with CameraSession(target, "chart-room", "cam-1", security=ChannelSecurity(token=cameras["chart-room"])) as cam:
        replies = [cam.process(jpeg) for jpeg in sample_jpegs()[:6]]
    faces = sum(len(r.faces) for r in replies)
    assert faces >= 6 and all(r.recorded for r in replies)
    assert {r.model.architecture for r in replies if r.faces} <= {"mobilenet_v2", "mobilenet_v3_small",
                                                                  "mobilenet_v3_large"}  # B0 is gated
    for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED),  # a camera token is required,
                        (auth["service-token"], grpc.StatusCode.UNAUTHENTICATED),  # the pipeline's is refused,
                        (cameras["other-room"], grpc.StatusCode.PERMISSION_DENIED)):  # and another room's
        security = ChannelSecurity(token=token) if token else None
        with CameraSession(target, "chart-room", "cam-2", security=security) as cam, \
                pytest.raises(grpc.RpcError) as err:
            cam.process(sample_jpegs()[0])
        assert err.value.code() == code
    aggregator = f"127.0.0.1:{cluster.service_ports[('ferlite-aggregator', 50053)]}"
    with grpc.insecure_channel(aggregator) as ch:
        summary = aggregator_pb2_grpc.AggregatorStub(ch).GetSummary(
            aggregator_pb2.SummaryRequest(classroom_id="chart-room", window_seconds=600, end_time=time.time() + 60),
            metadata=[("authorization", f"Bearer {auth['auth-token']}")], timeout=10)
    assert summary.total_events == faces
    # The teachers' dashboard, as rendered, reads the same figure through the aggregator's Service.
    dashboard = cluster.service_ports[("ferlite-dashboard", 8080)]
    request = urllib.request.Request(f"http://127.0.0.1:{dashboard}/api/classrooms/chart-room/summary?window=600",
                                     headers={"Authorization": f"Bearer {auth['auth-token']}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.loads(reply.read())["events"] == faces


def test_under_tls_every_hop_is_encrypted_and_the_probes_still_ask_health(tmp_path, certs) -> None:
    """Issue 27 (S7): with tls.enabled, classifier -> Triton carried face crops in plaintext and the
    probes fell back to a TCP connect. Rendered with TLS and mTLS and run by the kubelet double,
    Triton's gRPC takes only TLS clients with a certificate, every service's probes ask grpc.health.v1
    on its plaintext health port, and a camera's frame goes through the whole chain."""
    values = {"aggregator": {"replicas": 1}, "facedetect": {"autoscaling": {"enabled": False}, "replicas": 1},
              "classifier": {"autoscaling": {"enabled": False}, "replicas": 1}, "dashboard": {"enabled": False},
              "tls": {"enabled": True, "mtls": True, "existingSecret": "ferlite-tls"},
              "cameras": {"classrooms": ["tls-room"]}}
    files = {"ca.crt": "ca.pem", "tls.crt": "server.pem", "tls.key": "server.key"}
    tls = {key: (certs / name).read_text() for key, name in files.items()}
    kubelet = LocalKubelet(render(values), tmp_path, {"/opt/ferlite/models": PACK_DIR}, secrets={"ferlite-tls": tls})
    order = [n for n in ORDER if n != "ferlite-dashboard"]
    try:
        for name in order:
            kubelet.start(name)
            kubelet.wait_ready(name)
        for name in ("ferlite-facedetect", "ferlite-classifier", "ferlite-aggregator"):
            probe = kubelet.pods[name].spec["containers"][0]["readinessProbe"]
            assert "grpc" in probe and "tcpSocket" not in probe, name
            assert kubelet.probe(name, "readinessProbe") and kubelet.probe(name, "livenessProbe"), name
        triton = f"127.0.0.1:{kubelet.service_ports[('ferlite-triton', 8001)]}"
        with pytest.raises(InferenceServerException):  # no plaintext client gets an answer from Triton
            tritonclient.grpc.InferenceServerClient(triton).is_server_live(client_timeout=3)
        camera = ChannelSecurity(str(certs / "ca.pem"), str(certs / "client.pem"), str(certs / "client.key"),
                                 token=kubelet.secrets["ferlite-cameras"]["tls-room"])
        target = f"127.0.0.1:{kubelet.service_ports[('ferlite-facedetect', 50051)]}"
        with CameraSession(target, "tls-room", "cam-1", security=camera) as cam:
            replies = [cam.process(jpeg) for jpeg in sample_jpegs()[:3]]
        assert sum(len(r.faces) for r in replies) >= 3 and all(r.recorded for r in replies)
    finally:
        codes = kubelet.stop()
    assert all(c == [0] for c in codes.values()), codes
