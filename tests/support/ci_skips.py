"""A pytest plugin (loaded by tests/conftest.py): under CI, a skip for a missing dependency fails.

Locally a test whose dependency is missing (`pytest.importorskip`, `require_tool`) skips, so a
developer without Helm or TensorFlow can still run the rest. In CI (`CI` set, as CI services do)
the same skip would hide that a whole area went untested while the run stays green, so it is turned
into a failure that names the missing piece. Module-level skips (collection) and test-level ones alike.
"""

from __future__ import annotations

import os
import re

import pytest

# The reasons importorskip ("could not import 'x': ...") and require_tool ("x is not installed") give.
MISSING = re.compile(r"could not import|is not installed|No module named")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _fail_missing_dependency(report) -> None:
    if not (in_ci() and report.skipped):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if MISSING.search(reason):
        report.outcome = "failed"
        report.longrepr = f"CI: a skip for a missing dependency fails the run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_missing_dependency(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_missing_dependency(outcome.get_result())
