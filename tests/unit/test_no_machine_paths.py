"""No committed file names a path of the machine it was made on: results, reports and docs use
paths relative to the repository (`modelpack`, `../shared/data`), so they read the same on every
clone and leak no one's home or work folder."""

from __future__ import annotations

import re
import subprocess

from tests.support.procs import ROOT

# Absolute paths of the places where a checkout, a home or a temporary folder lives.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root|Users|tmp|private/var)/[\w.\-]+")
ALLOWED = {  # files that must name such paths (what a path looks like, or a container's own paths)
    "tests/unit/test_no_machine_paths.py",
}


def test_no_committed_file_names_a_path_of_this_machine() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if name in ALLOWED or not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary (models, images)
        offenders += [f"{name}: {m.group(0)}" for m in MACHINE_PATH.finditer(text)]
    assert not offenders, "machine paths in committed files:\n" + "\n".join(offenders[:40])
