"""Issue 26: every service installs and starts alone. Each service's project (and services/common,
nothing else: what its image installs) goes into a fresh virtual environment, is started with its
image's entry point and must answer health SERVING; a dependency it imports without declaring, or
one it must not carry (face detection: no Triton, Redis or TensorFlow), fails here."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import ROOT


def test_each_service_installs_alone_and_starts(tmp_path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_projects.py"),
                             "--markdown", str(tmp_path / "images.md")],
                            cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (tmp_path / "images.md").read_text()
    for service in ("facedetect", "classifier", "aggregator", "dashboard"):
        assert f"| {service} |" in table
