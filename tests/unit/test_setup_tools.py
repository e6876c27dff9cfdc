"""scripts/setup_tools.sh: the tests' system tools, never in the demo's way. When apt fails (another
apt holds its lock: exit 100), one line says what to do; FERLITE_SKIP_APT=1 goes on without."""

from __future__ import annotations

import os
import subprocess

from tests.support.procs import ROOT

MISSING = "ferlite-no-such-tool:ferlite-no-such-package"


def run(tmp_path, **env) -> subprocess.CompletedProcess:
    fake = tmp_path / "apt-get"
    fake.write_text("#!/bin/sh\necho \"E: Could not get lock /var/lib/dpkg/lock-frontend\" >&2\nexit 100\n")
    fake.chmod(0o755)
    full = {**os.environ, "FERLITE_APT_TOOLS": MISSING, "FERLITE_APT_GET": str(fake), **env}
    if "FERLITE_SKIP_APT" not in env:
        full.pop("FERLITE_SKIP_APT", None)
    return subprocess.run(["bash", str(ROOT / "scripts" / "setup_tools.sh")], capture_output=True, text=True,
                          env=full, timeout=60)


def test_a_failing_apt_says_in_one_line_what_to_do(tmp_path) -> None:
    out = run(tmp_path)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "FERLITE_SKIP_APT=1" in errors[0] and "ferlite-no-such-package" in errors[0]


def test_skip_apt_goes_on_without_the_tool(tmp_path) -> None:
    out = run(tmp_path, FERLITE_SKIP_APT="1")
    assert out.returncode == 0 and "ferlite-no-such-tool is missing" in out.stderr


def test_the_demo_sets_up_without_the_tests_tools() -> None:
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "FERLITE_TEST_TOOLS=0 bash scripts/setup.sh" in demo
    assert 'if [ "${FERLITE_TEST_TOOLS:-1}" = 1 ]; then' in setup
    assert "apt-get" not in setup  # apt lives in setup_tools.sh alone
