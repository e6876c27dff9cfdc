"""Issue 27: the rendered NetworkPolicies, evaluated for every connection the system makes and for
the ones that must stay closed (tests/support/netpol.py: a double of a CNI's policy engine).

Last review: with default values the chart would not go Ready on common managed clusters (DNS only
to kube-system pods on 53: NodeLocal DNSCache at 169.254.20.10, GKE Cloud DNS at 169.254.169.254
and OpenShift's DNS on 5353 were all blocked), `helm test` was blocked by the chart's own policies,
and cameras' source addresses never matched `cameraCIDRs` behind a Service that SNATs them.
"""

from __future__ import annotations

import pytest

from tests.support.chart import by_kind, render
from tests.support.netpol import Cluster, Endpoint, pod_of

CAMERA_NET = "10.20.0.0/16"
VALUES = {"networkPolicy": {"cameraCIDRs": [CAMERA_NET]},
          "facedetect": {"service": {"type": "LoadBalancer", "allowPlaintext": True}},
          "redis": {"backup": {"enabled": True}}}
NAMESPACES = {"kube-system": {}, "monitoring": {}, "openshift-dns": {}, "classroom-apps": {}}
NODE_IP = "10.0.0.5"  # a node's address: where SNAT-ed traffic appears to come from


@pytest.fixture(scope="module")
def chart():
    docs = render(VALUES)
    return docs, Cluster(docs, "ferlite", NAMESPACES)


def pods(docs):
    names = ["ferlite-facedetect", "ferlite-classifier", "ferlite-aggregator", "ferlite-triton", "ferlite-redis"]
    return {n.removeprefix("ferlite-"): pod_of(docs, n) for n in names}


def camera_source(docs, camera_ip: str) -> Endpoint:
    """The address a camera's connection arrives from at face detection: its own with
    externalTrafficPolicy Local, a node's with Cluster (kube-proxy SNATs it)."""
    service = by_kind(docs, "Service")["ferlite-facedetect"]["spec"]
    kept = service.get("type", "ClusterIP") in ("LoadBalancer", "NodePort") and \
        service.get("externalTrafficPolicy") == "Local"
    return Endpoint("camera", ip=camera_ip if kept else NODE_IP)


def test_every_connection_the_system_makes_is_allowed(chart) -> None:
    docs, cluster = chart
    p = pods(docs)
    hops = [(p["facedetect"], p["classifier"], 50052), (p["facedetect"], p["aggregator"], 50053),
            (p["classifier"], p["triton"], 8001), (p["aggregator"], p["redis"], 6379),
            (pod_of(docs, "ferlite-redis-backup"), p["redis"], 6379)]
    for src, dst, port in hops:
        assert cluster.allows(src, dst, port), f"{src.name} -> {dst.name}:{port}"
    camera = camera_source(docs, "10.20.3.4")
    assert cluster.allows(camera, p["facedetect"], 50051), "camera from cameraCIDRs through its Service"
    client = Endpoint("dashboard", "classroom-apps", {"ferlite.io/client": "true"})
    for name, port in (("facedetect", 50051), ("aggregator", 50053), ("classifier", 50052)):
        assert cluster.allows(client, p[name], port), f"client -> {name}"
    tester = pod_of(docs, "ferlite-test")  # `helm test`
    for name, port in (("facedetect", 50051), ("classifier", 50052), ("aggregator", 50053)):
        assert cluster.allows(tester, p[name], port), f"helm test -> {name}"
    prometheus = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
    for name, port in (("facedetect", 9101), ("classifier", 9102), ("aggregator", 9103), ("triton", 8002)):
        assert cluster.allows(prometheus, p[name], port), f"prometheus -> {name} metrics"


@pytest.mark.parametrize("dns", [
    Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"}),
    Endpoint("node-local-dns", ip="169.254.20.10"),  # NodeLocal DNSCache (GKE Autopilot, many others)
    Endpoint("gke-cloud-dns", ip="169.254.169.254"),  # GKE Cloud DNS (the metadata server)
], ids=lambda e: e.name)
def test_every_pod_reaches_dns(chart, dns) -> None:
    docs, cluster = chart
    for pod in [*pods(docs).values(), pod_of(docs, "ferlite-redis-backup")]:
        assert cluster.allows(pod, dns, 53, "UDP") and cluster.allows(pod, dns, 53, "TCP"), pod.name


def test_openshift_dns_on_5353() -> None:
    docs = render({"networkPolicy": {"dns": {"namespaces": ["openshift-dns"]}}})
    cluster = Cluster(docs, "ferlite", NAMESPACES)
    dns = Endpoint("dns-default", "openshift-dns", {"dns.operator.openshift.io/daemonset-dns": "default"})
    for pod in pods(docs).values():
        assert cluster.allows(pod, dns, 5353, "UDP"), pod.name


def test_what_must_stay_closed_is_closed(chart) -> None:
    docs, cluster = chart
    p = pods(docs)
    camera = camera_source(docs, "10.20.3.4")
    assert not cluster.allows(camera, p["aggregator"], 50053)
    assert not cluster.allows(camera, p["redis"], 6379)
    assert not cluster.allows(camera, p["facedetect"], 9101)  # metrics are Prometheus's only
    stranger = camera_source(docs, "192.0.2.7")  # outside cameraCIDRs
    assert not cluster.allows(stranger, p["facedetect"], 50051)
    assert not cluster.allows(p["facedetect"], p["redis"], 6379)
    assert not cluster.allows(p["facedetect"], p["triton"], 8001)
    client = Endpoint("dashboard", "classroom-apps", {"ferlite.io/client": "true"})
    assert not cluster.allows(client, p["redis"], 6379) and not cluster.allows(client, p["triton"], 8001)
    outsider = Endpoint("other-app", "classroom-apps", {"app": "other"})
    assert not cluster.allows(outsider, p["facedetect"], 50051)
    # and the evaluator itself: no policies, everything open
    assert Cluster([], "ferlite").allows(outsider, p["redis"], 6379)


def all_pod_specs(docs) -> dict[str, dict]:
    out = {}
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            out[d["metadata"]["name"]] = d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            out[d["metadata"]["name"]] = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif d["kind"] == "Pod":
            out[d["metadata"]["name"]] = d["spec"]
    return out


def test_every_pod_pulls_with_the_secrets_and_mounts_no_api_token() -> None:
    """Issue 27 (B3, S6): with a private registry Triton's init container could not pull (no
    imagePullSecrets on the Triton, Redis, backup and test pods), and every pod mounted a service-account
    token although none talks to the API; face detection held the admin token it never needs."""
    docs = render({**VALUES, "imagePullSecrets": [{"name": "district-registry"}]})
    specs = all_pod_specs(docs)
    assert {"ferlite-facedetect", "ferlite-classifier", "ferlite-aggregator", "ferlite-triton", "ferlite-redis",
            "ferlite-redis-backup", "ferlite-test"} <= set(specs)
    for name, spec in specs.items():
        assert spec.get("imagePullSecrets") == [{"name": "district-registry"}], name
        assert spec.get("automountServiceAccountToken") is False, name
    facedetect = {e["name"] for e in specs["ferlite-facedetect"]["containers"][0]["env"]}
    assert "FERLITE_FACEDETECT_AUTH_TOKEN" not in facedetect and "FERLITE_FACEDETECT_SERVICE_TOKEN" in facedetect


def test_the_exposed_camera_service_keeps_client_addresses_and_admits_only_camera_ranges() -> None:
    service = by_kind(render(VALUES), "Service")["ferlite-facedetect"]["spec"]
    assert service["type"] == "LoadBalancer" and service["externalTrafficPolicy"] == "Local"
    assert service["loadBalancerSourceRanges"] == [CAMERA_NET]
    inside = by_kind(render({}), "Service")["ferlite-facedetect"]["spec"]
    assert "externalTrafficPolicy" not in inside  # ClusterIP: nothing to keep


def test_the_camera_service_can_ask_for_an_internal_load_balancer() -> None:
    internal = {"networking.gke.io/load-balancer-type": "Internal"}
    values = {**VALUES, "facedetect": {"service": {"type": "LoadBalancer", "annotations": internal,
                                                   "allowPlaintext": True}}}
    assert by_kind(render(values), "Service")["ferlite-facedetect"]["metadata"]["annotations"] == internal


def test_replicas_spread_over_zones_and_nodes() -> None:
    """Issue 27 (S11): no topology spread anywhere; now every replicated workload prefers one replica per
    zone, then per node, without refusing to schedule on a small cluster."""
    specs = all_pod_specs(render({}))
    for name in ("ferlite-facedetect", "ferlite-classifier", "ferlite-aggregator", "ferlite-triton"):
        spread = specs[name]["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in spread] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        assert all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread)
        component = name.removeprefix("ferlite-")
        assert all(c["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component for c in spread)


def test_turning_autoscaling_on_never_drops_to_one_replica() -> None:
    """Issue 27 (S5): with autoscaling on, `replicas` was left out, so the upgrade that turned it on
    scaled the workload to 1 before the HPA scaled it back. Now it is what runs (lookup; on a first
    install, minReplicas), never absent."""
    values = {c: {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6}}
              for c in ("facedetect", "classifier", "aggregator")}
    docs = render(values)
    workloads_ = {d["metadata"]["name"]: d for d in docs if d["kind"] in ("Deployment", "StatefulSet")}
    for name in ("ferlite-facedetect", "ferlite-classifier", "ferlite-aggregator"):
        assert workloads_[name]["spec"]["replicas"] == 3, name
    fixed = render({"facedetect": {"autoscaling": {"enabled": False}, "replicas": 2}})
    assert by_kind(fixed, "Deployment")["ferlite-facedetect"]["spec"]["replicas"] == 2


def test_teacher_tokens_are_mounted_for_the_aggregator() -> None:
    docs = render({"teachers": {"existingSecret": "district-teachers"}})
    spec = all_pod_specs(docs)["ferlite-aggregator"]
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["FERLITE_AGGREGATOR_TEACHER_TOKENS_FILE"] == "/etc/ferlite/teachers"
    volume = next(v for v in spec["volumes"] if v["name"] == "teachers")
    assert volume["secret"] == {"secretName": "district-teachers", "defaultMode": 0o400}
    plain = all_pod_specs(render({}))["ferlite-aggregator"]
    assert "FERLITE_AGGREGATOR_TEACHER_TOKENS_FILE" not in {e["name"] for e in plain["containers"][0]["env"]}


def test_the_dashboard_is_reached_through_the_ingress_and_reaches_the_aggregator_only() -> None:
    """Issue 28: the teachers' dashboard takes traffic from the Ingress controller (and ferlite
    clients), and may itself reach the aggregator and DNS, nothing else of the system."""
    docs = render({**VALUES, "dashboard": {"ingress": {"enabled": True, "host": "ferlite.district.example"}}})
    cluster = Cluster(docs, "ferlite", {**NAMESPACES, "ingress-nginx": {}})
    p = pods(docs)
    dashboard = pod_of(docs, "ferlite-dashboard")
    controller = Endpoint("ingress-nginx-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
    assert cluster.allows(controller, dashboard, 8080)
    assert cluster.allows(pod_of(docs, "ferlite-test"), dashboard, 8080)  # `helm test`
    assert cluster.allows(dashboard, p["aggregator"], 50053)
    assert cluster.allows(dashboard, Endpoint("kube-dns", "kube-system", {"k8s-app": "kube-dns"}), 53, "UDP")
    stranger = Endpoint("somebody", "classroom-apps", {"app": "other"})
    assert not cluster.allows(stranger, dashboard, 8080)
    for name, port in (("redis", 6379), ("classifier", 50052), ("triton", 8001), ("facedetect", 50051)):
        assert not cluster.allows(dashboard, p[name], port), f"dashboard -> {name}"
    assert not cluster.allows(p["facedetect"], dashboard, 8080)
