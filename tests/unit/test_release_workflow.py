"""Issue 27 (B2): images a cluster can pull. The release workflow builds one image per service from
its own Dockerfile and pins the chart to their digests; it is checked against GitHub's workflow
schema (check-jsonschema's vendored copy, offline) and against the services that exist."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.procs import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def test_the_release_workflow_is_valid() -> None:
    beside = Path(sys.executable).parent / "check-jsonschema"  # this venv's, activated or not
    tool = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if tool is None:
        pytest.fail("check-jsonschema is missing: it is in the dev extra (scripts/setup.sh installs it)")
    result = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_release_builds_every_service_image_and_pins_its_digest() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    services = workflow["jobs"]["images"]["strategy"]["matrix"]["service"]
    built = sorted(p.parent.name for p in (ROOT / "services").glob("*/Dockerfile"))
    assert sorted(services) == built == ["aggregator", "classifier", "dashboard", "facedetect"]
    assert set(workflow["jobs"]["images"]["outputs"]) == set(services)
    script = workflow["jobs"]["chart"]["steps"][-1]["run"]
    assert "digests:" in script and "helm push" in script
