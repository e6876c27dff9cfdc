"""Rendering the Helm chart in tests (helm-python-sdk: Helm 4 as a library, no binary)."""

from __future__ import annotations

import pytest
import yaml

from tests.support.procs import ROOT

CHART = ROOT / "helm" / "ferlite"


# The chart requires an image repository (nothing is published under a default name); the tests
# render with this one unless they say otherwise.
TEST_REPOSITORY = "ghcr.io/ferlite"


def with_repository(values: dict) -> dict:
    image = values.get("image", {})
    return values if "repository" in image else {**values, "image": {**image, "repository": TEST_REPOSITORY}}


def render(values: dict) -> list[dict]:
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(with_repository(values), name="ferlite", namespace="ferlite")
    docs = []
    for path, text in out.items():
        if str(path).endswith("NOTES.txt"):  # shown to the user after install, not a manifest
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def notes(values: dict, release: str = "ferlite") -> str:
    helm = pytest.importorskip("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        out = chart.render(with_repository(values), name=release, namespace="ferlite")
    return next(text for path, text in out.items() if str(path).endswith("NOTES.txt"))


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def workloads(docs: list[dict]) -> dict[str, dict]:
    """Deployments and StatefulSets (the aggregator) by name: everything that runs pods."""
    return {**by_kind(docs, "Deployment"), **by_kind(docs, "StatefulSet")}
