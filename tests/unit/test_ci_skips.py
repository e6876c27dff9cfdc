"""The CI rule: a skip for a missing dependency passes locally and fails under CI, at collection
(module-level importorskip) and inside a test alike; other skips stay skips."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.procs import ROOT

PROBE = textwrap.dedent('''
    import pytest

    def test_needs_a_missing_module():
        pytest.importorskip("ferlite_no_such_module")

    def test_needs_a_missing_tool():
        pytest.skip("frobnicate is not installed; scripts/setup.sh installs it")

    def test_skipped_for_another_reason():
        pytest.skip("only on Tuesdays")
''')
MODULE_LEVEL = 'import pytest\npytest.importorskip("ferlite_no_such_module")\n\ndef test_x():\n    pass\n'


def run(tmp_path, ci: str | None, files: tuple[str, ...] = ("test_probe.py", "test_module_level.py")
        ) -> subprocess.CompletedProcess:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "test_module_level.py").write_text(MODULE_LEVEL)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.ci_skips", "-q", "-rfEs",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *(str(tmp_path / f) for f in files)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)


@pytest.mark.parametrize("ci", [None, "false"])
def test_locally_missing_dependencies_skip(tmp_path, ci) -> None:
    out = run(tmp_path, ci)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "4 skipped" in out.stdout


def test_under_ci_missing_dependencies_fail_and_other_skips_stay(tmp_path) -> None:
    out = run(tmp_path, "true", ("test_probe.py",))
    assert out.returncode == 1, out.stdout[-2000:]
    assert "2 failed, 1 skipped" in out.stdout, out.stdout[-2000:]
    assert "a skip for a missing dependency fails the run" in out.stdout


def test_under_ci_a_module_level_importorskip_is_a_collection_error(tmp_path) -> None:
    out = run(tmp_path, "true", ("test_module_level.py",))
    assert out.returncode == 2 and "1 error" in out.stdout, out.stdout[-2000:]
    assert "could not import 'ferlite_no_such_module'" in out.stdout
