"""Deployment artefacts: the Helm chart (lint, render, Kubernetes 1.32 schemas), Prometheus rules
(promtool), the Grafana dashboard against real /metrics, and `ferlite ab` against an in-memory
Kubernetes API double."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request

import pytest
import yaml

from ferlite.app.ab import main as ab_main
from tests.support.chart import CHART, by_kind, notes, render, with_repository, workloads
from tests.support.k8s_double import InMemoryKubernetesApi
from tests.support.procs import ROOT, require_tool

CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # CRDs: no upstream schema to validate against

VALUE_SETS = {
    "defaults": {},
    "external-redis-monitoring-tls": {
        "redis": {"enabled": False, "externalUrl": "rediss://redis.example.internal:6380/0",
                  "auth": {"existingSecret": "managed-redis"}},
        "monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
        "tls": {"enabled": True, "existingSecret": "ferlite-tls", "mtls": True},
        "auth": {"existingSecret": "ferlite-auth"}},
    "gpu-pvc-no-autoscaling": {
        "triton": {"gpus": 1, "modelRepository": {"source": "pvc", "pvcName": "models", "kind": "KIND_GPU"}},
        "facedetect": {"autoscaling": {"enabled": False, "minReplicas": 1, "maxReplicas": 1,
                                       "targetCPUUtilizationPercentage": 70}},
        "aggregator": {"spool": {"persistence": {"enabled": True, "size": "5Gi"}}},
        "networkPolicy": {"enabled": False}},
    "no-operator-with-backups": {
        "monitoring": {"grafanaDashboard": {"enabled": True}},
        "redis": {"backup": {"enabled": True}},
        "aggregator": {"autoscaling": {"enabled": True}}},
    "restoring-a-backup-cameras-outside": {
        "redis": {"backup": {"enabled": True}, "restore": {"snapshot": "redis-20261125T023000Z.rdb"}},
        "facedetect": {"service": {"type": "LoadBalancer", "annotations": {"networking.gke.io/load-balancer-type":
                                                                            "Internal"}}},
        "networkPolicy": {"cameraCIDRs": ["10.20.0.0/16"]},
        "cameras": {"classrooms": ["room-101", "room-102"]}, "imagePullSecrets": [{"name": "district-registry"}],
        "tls": {"enabled": True, "existingSecret": "ferlite-tls"}},  # cameras across networks: TLS
}


def test_chart_lints_clean() -> None:
    helm = pytest.importorskip("helm_python")
    for values in VALUE_SETS.values():
        report = helm.lint(str(CHART), with_repository(values))
        assert report["errors"] == [], report
        assert not [m for m in report["messages"] if m["severity"] > 1], report


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_rendered_manifests_validate_against_kubernetes_1_32(name: str) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    docs = render(VALUE_SETS[name])
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["spec"]
            continue
        kv.validate(doc, "1.32", strict=True)  # raises on any schema error or removed API


def test_default_chart_wiring() -> None:
    docs = render({})
    deployments = workloads(docs)
    assert set(deployments) == {"ferlite-facedetect", "ferlite-classifier", "ferlite-aggregator", "ferlite-triton",
                                "ferlite-redis", "ferlite-dashboard"}
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert "resources" in c and c["resources"]["limits"], name
    for svc in ("facedetect", "classifier", "aggregator"):
        c = deployments[f"ferlite-{svc}"]["spec"]["template"]["spec"]["containers"][0]
        assert c["readinessProbe"]["grpc"]["port"] == c["ports"][0]["containerPort"]
        assert c["livenessProbe"]["grpc"]["service"] == "liveness"  # not readiness: Triton may be away
    classifier = deployments["ferlite-classifier"]["spec"]["template"]["spec"]
    assert {"name": "ab-policy", "mountPath": "/etc/ferlite/ab", "readOnly": True} in classifier["containers"][0][
        "volumeMounts"]
    policy = json.loads(by_kind(docs, "ConfigMap")["ferlite-ab-policy"]["data"]["policy.json"])
    assert set(policy["weights"]) == {"mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"}
    triton = deployments["ferlite-triton"]["spec"]["template"]["spec"]
    assert triton["initContainers"][0]["command"] == ["python", "-m", "ferlite.services.classifier.repository"]
    assert triton["initContainers"][0]["image"] == "ghcr.io/ferlite/ferlite-classifier:0.1.0"
    for svc in ("facedetect", "classifier", "aggregator", "dashboard"):  # one image per service, its own entry point
        c = deployments[f"ferlite-{svc}"]["spec"]["template"]["spec"]["containers"][0]
        assert c["image"] == f"ghcr.io/ferlite/ferlite-{svc}:0.1.0" and "args" not in c and "command" not in c
        dockerfile = (ROOT / "services" / svc / "Dockerfile").read_text()
        assert f'ENTRYPOINT ["python", "-m", "ferlite.services.{svc}"]' in dockerfile
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Secret"} <= {d["kind"] for d in docs}
    aggregator_env = {e["name"]: e for e in deployments["ferlite-aggregator"]["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert aggregator_env["FERLITE_AGGREGATOR_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "redis-password"


def test_network_policies_allow_only_the_pipeline() -> None:
    policies = by_kind(render({}), "NetworkPolicy")
    def sources(name: str) -> list[str]:
        rule = policies[name]["spec"]["ingress"][0]
        return sorted(f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component", "clients")
                      for f in rule["from"])
    assert sources("ferlite-classifier") == ["clients", "facedetect", "test"]  # test: the `helm test` pod
    assert sources("ferlite-triton") == ["classifier"]
    assert sources("ferlite-redis") == ["aggregator"]
    assert sources("ferlite-aggregator") == ["clients", "dashboard", "facedetect", "test"]
    assert sources("ferlite-dashboard") == ["clients", "clients", "test"]  # the Ingress controller's namespace, too


def test_the_dashboard_probes_http_and_its_ingress_carries_tls() -> None:
    """Issue 28: the chart deploys the teachers' dashboard (Service, probes, an optional Ingress with
    TLS, NetworkPolicy); it holds no token of its own, and under TLS it checks the aggregator's."""
    dashboard = workloads(render({}))["ferlite-dashboard"]["spec"]["template"]["spec"]["containers"][0]
    assert dashboard["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert dashboard["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e.get("value") for e in dashboard["env"]}
    assert env["FERLITE_DASHBOARD_AGGREGATOR_URL"] == "dns:///ferlite-aggregator-pods:50053"
    assert not [n for n in env if "TOKEN" in n]  # reads with each teacher's own token
    assert env["FERLITE_DASHBOARD_SECURE_COOKIES"] == "false"
    assert "Ingress" not in {d["kind"] for d in render({})}
    docs = render({"dashboard": {"ingress": {"enabled": True, "className": "nginx", "host": "ferlite.district.example",
                                             "tls": {"secretName": "ferlite-dashboard-tls"}}},
                   "tls": {"enabled": True, "existingSecret": "ferlite-tls", "mtls": True}})
    ingress = by_kind(docs, "Ingress")["ferlite-dashboard"]["spec"]
    assert ingress["tls"] == [{"hosts": ["ferlite.district.example"], "secretName": "ferlite-dashboard-tls"}]
    assert ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "ferlite-dashboard"
    env = {e["name"]: e.get("value") for e in workloads(docs)["ferlite-dashboard"]["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert env["FERLITE_DASHBOARD_SECURE_COOKIES"] == "true"
    assert env["FERLITE_DASHBOARD_AGGREGATOR_TLS_CA"] == "/etc/ferlite/tls/ca.crt"
    assert env["FERLITE_DASHBOARD_AGGREGATOR_TLS_CERT"] == "/etc/ferlite/tls/tls.crt"  # mTLS: a client certificate
    assert "ferlite-dashboard" not in workloads(render({"dashboard": {"enabled": False}}))


def test_schema_rejects_bad_values() -> None:
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        bad_arch = {"classifier": {"abPolicy": {"weights": {"resnet50": 1}}}}
        for bad, where in ((bad_arch, "invalid propertyName 'resnet50'"),
                           ({"facedetect": {"detector": "yolo"}}, "/facedetect/detector"),
                           ({"redis": {"externalUrl": "http://nope"}}, "/redis/externalUrl"),
                           ({"facedetect": {"replicas": 0}}, "/facedetect/replicas")):
            with pytest.raises(Exception) as err:
                chart.validate_schema(chart.merge_values(bad))
            assert where in str(err.value)
        chart.validate_schema(chart.merge_values({}))
        with pytest.raises(Exception) as err:  # a digest that is not one
            chart.validate_schema(chart.merge_values({"image": {"digests": {"facedetect": "latest"}}}))
        assert "/image/digests/facedetect" in str(err.value)


def test_the_chart_needs_an_image_repository_and_pins_digests() -> None:
    """Issue 27 (B2): the default image (ghcr.io/ferlite/ferlite:0.1.0) was built or published by nothing.
    Now there is no default: rendering without image.repository stops with a message saying what to
    set; the release workflow pins each image by digest."""
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(Exception) as err:
        chart.render({}, name="ferlite", namespace="ferlite")
    assert "image.repository is required" in str(err.value)
    digest = "sha256:" + "ab" * 32
    docs = render({"image": {"repository": "registry.district.example/ferlite", "digests": {"classifier": digest}}})
    deployments = by_kind(docs, "Deployment")
    classifier = deployments["ferlite-classifier"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert classifier == f"registry.district.example/ferlite/ferlite-classifier@{digest}"
    triton_init = deployments["ferlite-triton"]["spec"]["template"]["spec"]["initContainers"][0]["image"]
    assert triton_init == classifier  # the init container runs the very same classifier image
    facedetect = deployments["ferlite-facedetect"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert facedetect == "registry.district.example/ferlite/ferlite-facedetect:0.1.0"


def test_alert_rules_pass_promtool() -> None:
    promtool = require_tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(CHART / "files" / "alerts.yml")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=ROOT / "deploy" / "prometheus",
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    config = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=ROOT / "deploy" / "prometheus",
                            capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    alerts = {r["alert"] for g in yaml.safe_load((CHART / "files" / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}
    tests = (ROOT / "deploy" / "prometheus" / "alerts_test.yml").read_text()
    assert all(f"alertname: {a}" in tests for a in alerts), "every alert needs a promtool test"


def _exported_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "counter":
                names |= {name + "_total", name + "_created"}
            if kind == "histogram":
                names |= {name + s for s in ("_bucket", "_sum", "_count", "_created")}
    return names


def test_dashboard_queries_only_metrics_the_services_export(exported_models, tmp_path) -> None:
    from ferlite.services.aggregator.config import AggregatorConfig
    from ferlite.services.aggregator.server import build as build_aggregator
    from ferlite.services.classifier.config import ClassifierConfig
    from ferlite.services.classifier.server import build as build_classifier
    from ferlite.services.facedetect.config import FaceDetectConfig
    from ferlite.services.facedetect.server import build as build_facedetect

    dashboard = json.loads((CHART / "files" / "ferlite-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queried = {m for e in exprs for m in re.findall(r"\b((?:ferlite|nv)_[a-z0-9_]+)", e)}
    assert len(dashboard["panels"]) >= 10 and len(queried) >= 20
    servers = [
        build_aggregator(AggregatorConfig(port=0, metrics_port=0, data_dir=str(tmp_path / "a"))),
        build_classifier(ClassifierConfig(min_val_accuracy=0.0, port=0, metrics_port=0,
                                          model_dir=str(exported_models), triton_metrics_port=0,
                                          repository_dir=str(tmp_path / "t"))),
        build_facedetect(FaceDetectConfig(port=0, metrics_port=0)),
    ]
    exported: set[str] = set()
    try:
        for server in servers:
            server.start()
            exported |= _exported_names(urllib.request.urlopen(
                f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode())
        triton_port = servers[1].triton.metrics_port
        exported |= _exported_names(urllib.request.urlopen(f"http://127.0.0.1:{triton_port}/metrics",
                                                           timeout=10).read().decode())
    finally:
        for server in servers:
            server.stop(0)
    assert queried - exported == set(), f"the dashboard queries metrics nobody exports: {queried - exported}"


@pytest.fixture
def k8s(tmp_path):
    double = InMemoryKubernetesApi()
    double.configmaps[("ferlite", "ferlite-ab-policy")] = {
        "policy.json": json.dumps({"weights": {"mobilenet_v2": 1, "efficientnet_b0": 1}, "sticky": True})}
    yield double, str(double.kubeconfig(tmp_path / "kubeconfig"))
    double.close()


def test_ab_show_and_set_against_the_kubernetes_api_double(k8s, capsys) -> None:
    double, kubeconfig = k8s
    base = ["--kubeconfig", kubeconfig, "--namespace", "ferlite"]
    assert ab_main([*base, "show"]) == 0
    assert "mobilenet_v2         weight 1  (50% of traffic)" in capsys.readouterr().out
    assert ab_main([*base, "set", "mobilenet_v2=3", "mobilenet_v3_small=1", "--shadow", "0.1"]) == 0
    stored = json.loads(double.configmaps[("ferlite", "ferlite-ab-policy")]["policy.json"])
    assert stored == {"weights": {"mobilenet_v2": 3.0, "mobilenet_v3_small": 1.0}, "sticky": True,
                      "shadow_fraction": 0.1}
    assert any(method == "PATCH" for method, _, _ in double.requests)
    assert ab_main([*base, "set", "efficientnet_b0=2", "--merge", "--no-sticky"]) == 0
    stored = json.loads(double.configmaps[("ferlite", "ferlite-ab-policy")]["policy.json"])
    assert stored["weights"] == {"mobilenet_v2": 3.0, "mobilenet_v3_small": 1.0, "efficientnet_b0": 2.0}
    assert stored["sticky"] is False


@pytest.mark.parametrize(("args", "needle"), [
    (["set", "resnet50=1"], "unknown architecture 'resnet50'"),
    (["set", "mobilenet_v2=-2"], "must be a non-negative number"),
    (["set", "mobilenet_v2=0"], "at least one weight must be > 0"),
    (["set", "mobilenet_v2"], "write ARCHITECTURE=WEIGHT"),
    (["--configmap", "missing", "show"], "ConfigMap ferlite/missing not found"),
])
def test_ab_errors_are_clear_and_write_nothing(k8s, capsys, args, needle) -> None:
    double, kubeconfig = k8s
    before = dict(double.configmaps[("ferlite", "ferlite-ab-policy")])
    assert ab_main(["--kubeconfig", kubeconfig, "--namespace", "ferlite", *args]) == 2
    assert needle in capsys.readouterr().err
    assert double.configmaps[("ferlite", "ferlite-ab-policy")] == before
    assert not any(method == "PATCH" for method, _, _ in double.requests)


def test_ab_without_a_cluster(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert ab_main(["show"]) == 2
    assert "no Kubernetes cluster configured" in capsys.readouterr().err
    unreachable = tmp_path / "kc"
    double = InMemoryKubernetesApi()
    double.kubeconfig(unreachable)
    double.close()
    assert ab_main(["--kubeconfig", str(unreachable), "show"]) == 2
    assert "cannot reach the Kubernetes API" in capsys.readouterr().err


def test_chart_crops_at_the_size_the_shipped_pack_owns() -> None:
    """The chart does not hard-code a crop size: face detection reads it from the models baked into
    the image (its Dockerfile copies the model pack to the chart's modelDir)."""
    from ferlite.base.model_metadata import PACK_DIR, find_models
    from ferlite.services.facedetect.config import FaceDetectConfig

    docs = render({})
    pod = by_kind(docs, "Deployment")["ferlite-facedetect"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert env["FERLITE_FACEDETECT_CROP_SIZE"] == "0"
    assert env["FERLITE_FACEDETECT_MODEL_DIR"] == values["modelDir"]
    for svc in ("facedetect", "classifier"):
        dockerfile = (ROOT / "services" / svc / "Dockerfile").read_text()
        assert f"COPY {PACK_DIR.name} {values['modelDir']}" in dockerfile
    pack = find_models(PACK_DIR)
    assert len(pack) == 4
    config = FaceDetectConfig(crop_size=0, model_dir=str(PACK_DIR))
    assert config.resolved_crop_size() == max(m.input_size for m in pack)


def test_triton_schedules_on_a_single_gpu_node_and_its_init_container_fits_a_quota() -> None:
    values = {"triton": {"gpus": 1, "nodeSelector": {"nvidia.com/gpu.present": "true"},
                         "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                         "runtimeClassName": "nvidia"}, "classifier": {"maxBatch": 32}}
    triton = by_kind(render(values), "Deployment")["ferlite-triton"]["spec"]
    # Issue 27 (S5): stated with rollingUpdate null, so turning gpus on for a running release is not
    # refused (a 3-way merge would keep the old rollingUpdate block under type Recreate).
    assert triton["strategy"] == {"type": "Recreate", "rollingUpdate": None}
    pod = triton["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    init = pod["initContainers"][0]
    assert init["resources"]["requests"] and init["resources"]["limits"]
    assert init["args"][init["args"].index("--max-batch") + 1] == "32"
    # Issue 27 (S8): a GPU pod's models are placed on the GPU (KIND_GPU), unless the operator says otherwise.
    assert init["args"][init["args"].index("--kind") + 1] == "KIND_GPU"
    cpu = by_kind(render({}), "Deployment")["ferlite-triton"]["spec"]
    assert cpu["strategy"]["type"] == "RollingUpdate"  # CPU: rolling, never below the replicas
    init_cpu = cpu["template"]["spec"]["initContainers"][0]["args"]
    assert init_cpu[init_cpu.index("--kind") + 1] == "KIND_CPU"
    assert pod["containers"][0]["startupProbe"]["failureThreshold"] * pod["containers"][0]["startupProbe"][
        "periodSeconds"] >= 300  # four models on a cold node


def test_a_single_replica_gets_no_pdb_that_would_block_node_drains() -> None:
    pdbs = by_kind(render({}), "PodDisruptionBudget")
    assert "ferlite-aggregator" in pdbs
    single = {"aggregator": {"replicas": 1, "autoscaling": {"enabled": False}}}
    assert "ferlite-aggregator" not in by_kind(render(single), "PodDisruptionBudget")


def test_helm_test_pod_checks_every_service() -> None:
    pods = [d for d in render({}) if d["kind"] == "Pod"]
    assert len(pods) == 1 and pods[0]["metadata"]["annotations"]["helm.sh/hook"] == "test"
    targets = pods[0]["spec"]["containers"][0]["args"][1:]
    assert targets == ["ferlite-facedetect:50051", "ferlite-classifier:50052", "ferlite-aggregator:50053",
                       "http://ferlite-dashboard:8080/readyz"]
    text = notes({})
    assert "helm test ferlite -n ferlite" in text and "ferlite-facedetect:50051" in text
    # Issue 27: the `ab` command NOTES prints names this release's ConfigMap, whatever the release is called.
    district = notes({}, release="district")
    assert "--configmap district-ferlite-ab-policy" in district and "district-ferlite-cameras" in district


def test_redis_never_evicts_silently_and_its_volume_outlives_uninstall() -> None:
    docs = render({})
    redis_cmd = by_kind(docs, "Deployment")["ferlite-redis"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--maxmemory 640mb --maxmemory-policy noeviction" in redis_cmd[-1]
    pvc = by_kind(docs, "PersistentVolumeClaim")["ferlite-redis"]
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_cameras_outside_the_cluster_can_reach_face_detection() -> None:
    docs = render({"facedetect": {"service": {"type": "LoadBalancer"}}, "tls": {"enabled": True, "existingSecret": "t"},
                   "networkPolicy": {"cameraCIDRs": ["10.20.0.0/16"]}})
    assert by_kind(docs, "Service")["ferlite-facedetect"]["spec"]["type"] == "LoadBalancer"
    sources = by_kind(docs, "NetworkPolicy")["ferlite-facedetect"]["spec"]["ingress"][0]["from"]
    assert {"ipBlock": {"cidr": "10.20.0.0/16"}} in sources
    assert "type" not in by_kind(render({}), "Service")["ferlite-classifier"]["spec"]


def test_face_detection_balances_over_headless_services() -> None:
    docs = render({})
    services = by_kind(docs, "Service")
    for name in ("ferlite-classifier-pods", "ferlite-aggregator-pods"):
        assert services[name]["spec"]["clusterIP"] == "None"
    env = {e["name"]: e.get("value") for e in by_kind(docs, "Deployment")["ferlite-facedetect"]["spec"]["template"][
        "spec"]["containers"][0]["env"]}
    assert env["FERLITE_FACEDETECT_CLASSIFIER_URL"] == "dns:///ferlite-classifier-pods:50052"
    assert env["FERLITE_FACEDETECT_AGGREGATOR_URL"] == "dns:///ferlite-aggregator-pods:50053"


def test_aggregator_is_a_statefulset_with_a_spool_claim_per_pod() -> None:
    """Two aggregator replicas never share one ReadWriteOnce spool: each pod gets its own claim
    (kept when the pod or release goes away), and the HPA scales the StatefulSet."""
    values = {"aggregator": {"replicas": 2, "spool": {"persistence": {"enabled": True, "size": "5Gi"}},
                             "autoscaling": {"enabled": True}}}
    docs = render(values)
    assert "ferlite-aggregator" not in by_kind(docs, "Deployment")
    sts = by_kind(docs, "StatefulSet")["ferlite-aggregator"]["spec"]
    assert sts["serviceName"] == "ferlite-aggregator-pods"
    assert [c["metadata"]["name"] for c in sts["volumeClaimTemplates"]] == ["spool"]
    assert sts["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert sts["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    pod = sts["template"]["spec"]
    assert "spool" not in {v["name"] for v in pod["volumes"]}  # from the claim template, not a shared PVC
    assert not [d for d in by_kind(docs, "PersistentVolumeClaim") if "spool" in d]
    assert pod["terminationGracePeriodSeconds"] >= 30
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["FERLITE_AGGREGATOR_EVENT_MARKER_SECONDS"] == "900"
    hpa = by_kind(docs, "HorizontalPodAutoscaler")["ferlite-aggregator"]["spec"]["scaleTargetRef"]
    assert hpa["kind"] == "StatefulSet"
    # Issue 27 (S4/S10): by default the spool is on a claim per pod (an emptyDir's events, acknowledged,
    # went with the pod on a scale-down while Redis was away) ...
    default = by_kind(render({}), "StatefulSet")["ferlite-aggregator"]["spec"]
    assert [c["metadata"]["name"] for c in default["volumeClaimTemplates"]] == ["spool"]
    plain = by_kind(render({"aggregator": {"spool": {"persistence": {"enabled": False}}}}),
                    "StatefulSet")["ferlite-aggregator"]["spec"]
    assert "volumeClaimTemplates" not in plain
    # ... and without one, the emptyDir has a size limit above the aggregator's own spool limit, so the
    # service refuses batches (cameras resend) before the kubelet would evict the pod and its spool.
    assert {"name": "spool", "emptyDir": {"sizeLimit": "1024Mi"}} in plain["template"]["spec"]["volumes"]
    env = {e["name"]: e.get("value") for e in plain["template"]["spec"]["containers"][0]["env"]}
    assert env["FERLITE_AGGREGATOR_SPOOL_MAX_MB"] == "768"
    redis = by_kind(render({}), "Deployment")["ferlite-redis"]["spec"]["template"]["spec"]["containers"][0]
    assert redis["resources"]["requests"]["memory"] == redis["resources"]["limits"]["memory"]


def test_a_cluster_without_the_prometheus_operator_gets_annotations_and_a_dashboard_configmap() -> None:
    docs = render({"monitoring": {"grafanaDashboard": {"enabled": True}}})
    assert not by_kind(docs, "ServiceMonitor") and not by_kind(docs, "PrometheusRule")
    ports = {"ferlite-facedetect": "9101", "ferlite-classifier": "9102", "ferlite-aggregator": "9103",
             "ferlite-triton": "8002"}
    for name, port in ports.items():
        meta = workloads(docs)[name]["spec"]["template"]["metadata"]
        assert meta["annotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": port,
                                       "prometheus.io/path": "/metrics"}, name
        container_ports = {p["name"]: str(p["containerPort"])
                           for p in workloads(docs)[name]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        assert container_ports["metrics"] == port  # the annotation names the port that serves /metrics
    cm = by_kind(docs, "ConfigMap")["ferlite-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["ferlite-dashboard.json"]) == json.loads(
        (CHART / "files" / "ferlite-dashboard.json").read_text())
    off = render({"monitoring": {"scrapeAnnotations": False}})
    assert "annotations" not in workloads(off)["ferlite-facedetect"]["spec"]["template"]["metadata"]


def test_redis_backup_cronjob_reaches_redis_and_keeps_its_claim() -> None:
    docs = render({"redis": {"backup": {"enabled": True, "keep": 3}}})
    job = by_kind(docs, "CronJob")["ferlite-redis-backup"]["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    script = pod["containers"][0]["command"][2]
    assert "--rdb" in script and "ferlite-redis" in script and "tail -n +$((3 + 1))" in script
    claim = by_kind(docs, "PersistentVolumeClaim")["ferlite-redis-backup"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # Redis admits the backup pods (and otherwise only the aggregator)
    policy = by_kind(docs, "NetworkPolicy")["ferlite-redis"]["spec"]["ingress"][0]["from"]
    components = [f["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for f in policy]
    assert components == ["aggregator", "redis-backup"]
    assert "CronJob" not in {d["kind"] for d in render({})}


def test_egress_lets_each_pod_reach_dns_and_its_next_hop_only() -> None:
    def egress(docs, name):
        rules = by_kind(docs, "NetworkPolicy")[name]["spec"]["egress"]
        dns, hops = rules[0], rules[1:]
        assert {p["port"] for p in dns["ports"]} == {53, 5353}  # 5353: OpenShift's DNS pods
        return {(t.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
                 or t["ipBlock"]["cidr"], r["ports"][0]["port"]) for r in hops for t in r["to"]}

    docs = render({})
    assert egress(docs, "ferlite-facedetect") == {("classifier", 50052), ("aggregator", 50053)}
    assert egress(docs, "ferlite-classifier") == {("triton", 8001)}
    assert egress(docs, "ferlite-aggregator") == {("redis", 6379)}
    assert egress(docs, "ferlite-triton") == set() and egress(docs, "ferlite-redis") == set()
    for policy in by_kind(docs, "NetworkPolicy").values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    managed = render({"redis": {"enabled": False, "externalUrl": "rediss://r.example:6380/0"},
                      "networkPolicy": {"externalRedis": {"cidr": "10.9.0.0/16", "port": 6380}}})
    assert egress(managed, "ferlite-aggregator") == {("10.9.0.0/16", 6380)}


def test_every_value_in_the_schema_says_what_it_is_for() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = []

    def walk(node: dict, path: str) -> None:
        if "type" in node and not node.get("description"):
            missing.append(path or "/")
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}/{key}")

    walk(schema, "")
    assert missing == []


def test_a_long_release_name_still_makes_a_valid_cronjob() -> None:
    """Issue 27: the backup CronJob's name passed 52 characters for long release names (refused)."""
    helm = pytest.importorskip("helm_python")
    import yaml as _yaml

    release = "ferlite-north-district-secondary-schools"
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(with_repository({"redis": {"backup": {"enabled": True}}}), name=release, namespace="ferlite")
    docs = [d for path, text in out.items() if not str(path).endswith("NOTES.txt")
            for d in _yaml.safe_load_all(text) if d]
    cronjobs = [d["metadata"]["name"] for d in docs if d["kind"] == "CronJob"]
    assert cronjobs and all(len(n) <= 52 and not n.endswith("-") for n in cronjobs), cronjobs


def test_an_exposed_service_carries_no_metrics_port_and_monitoring_still_finds_it() -> None:
    """Issue 27 (S2): face detection's LoadBalancer carried its metrics port to the camera networks.
    Exposed, it carries gRPC only; the metrics port moves to an in-cluster Service of its own, the
    one (by label) the ServiceMonitor scrapes, so every component is scraped once."""
    docs = render({"facedetect": {"service": {"type": "LoadBalancer", "allowPlaintext": True}},
                   "monitoring": {"serviceMonitor": {"enabled": True}}})
    services = by_kind(docs, "Service")
    exposed = services["ferlite-facedetect"]["spec"]
    assert exposed["type"] == "LoadBalancer" and [p["name"] for p in exposed["ports"]] == ["grpc"]
    metrics = services["ferlite-facedetect-metrics"]
    assert metrics["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert [p["name"] for p in metrics["spec"]["ports"]] == ["metrics"]
    for name, monitor in by_kind(docs, "ServiceMonitor").items():
        wanted = monitor["spec"]["selector"]["matchLabels"]
        scraped = [s for s, svc in services.items()
                   if wanted.items() <= svc["metadata"]["labels"].items()
                   and any(p["name"] == "metrics" for p in svc["spec"]["ports"])]
        assert len(scraped) == 1, (name, scraped)  # one Service with the metrics port per component
    default = by_kind(render({}), "Service")["ferlite-facedetect"]["spec"]
    assert [p["name"] for p in default["ports"]] == ["grpc", "metrics"]  # ClusterIP: unchanged


def test_triton_survives_one_pod_going_away_by_default() -> None:
    """Issue 27 (S11): one Triton replica meant every Triton restart or node drain stopped all
    classification. Two by default, spread over zones and nodes, with a PDB."""
    docs = render({})
    triton = workloads(docs)["ferlite-triton"]["spec"]
    assert triton["replicas"] == 2 and triton["template"]["spec"]["topologySpreadConstraints"]
    assert by_kind(docs, "PodDisruptionBudget")["ferlite-triton"]["spec"]["minAvailable"] == 1


def test_triton_has_no_http_endpoint_unless_tls_needs_it_for_probes() -> None:
    """Issue 27 (Triton's age and CVEs): Triton 24.10's HTTP parser carries CVE-2025-23310/23311
    (fixed in 25.07). Without TLS nothing needs HTTP: it is off (--allow-http=false) and the probes
    ask Triton's grpc.health.v1. Under TLS the kubelet's probes cannot speak it, so plain HTTP stays
    for them, unreachable by any client (NetworkPolicy)."""
    triton = workloads(render({}))["ferlite-triton"]["spec"]["template"]["spec"]["containers"][0]
    assert "--allow-http=false" in triton["args"] and 8000 not in [p["containerPort"] for p in triton["ports"]]
    assert triton["readinessProbe"]["grpc"]["port"] == 8001 and triton["startupProbe"]["grpc"]["port"] == 8001
    service = by_kind(render({}), "Service")["ferlite-triton"]["spec"]
    assert [p["port"] for p in service["ports"]] == [8001, 8002]
    tls = workloads(render({"tls": {"enabled": True, "existingSecret": "ferlite-tls"}}))["ferlite-triton"]
    container = tls["spec"]["template"]["spec"]["containers"][0]
    assert "--allow-http=false" not in container["args"] and "--grpc-use-ssl=true" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"


def test_face_detection_is_not_exposed_in_plaintext_unless_the_operator_says_so() -> None:
    """Issue 27 (S2): the exposed camera Service carried frames and camera tokens across networks with
    TLS off. Exposing it (LoadBalancer/NodePort) without tls.enabled now stops the render with what to
    set; facedetect.service.allowPlaintext=true is the operator's explicit choice for a trusted network."""
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart, pytest.raises(Exception) as err:
        chart.render(with_repository({"facedetect": {"service": {"type": "LoadBalancer"}}}), name="ferlite",
                     namespace="ferlite")
    assert "tls.enabled" in str(err.value) and "allowPlaintext" in str(err.value)
    with_tls = {"tls": {"enabled": True, "existingSecret": "t"}, "facedetect": {"service": {"type": "NodePort"}}}
    trusted = {"facedetect": {"service": {"type": "NodePort", "allowPlaintext": True}}}
    for values in (with_tls, trusted):
        assert by_kind(render(values), "Service")["ferlite-facedetect"]["spec"]["type"] == "NodePort"

