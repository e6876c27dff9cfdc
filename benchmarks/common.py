"""Helpers shared by the benchmark scripts: timing statistics and result files."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ferlite.app.load import percentiles  # noqa: F401  (one definition, shared with the load engine)

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parent.parent


def repo_relative(text: str) -> str:
    """Paths of this machine made relative to the repository (`modelpack`, `../shared/data`), so a
    committed result names no one's home or work folder (tests/unit/test_no_machine_paths.py)."""
    text = text.replace(str(ROOT) + "/", "").replace(str(ROOT), ".")
    text = text.replace(str(ROOT.parent) + "/", "../")
    return re.sub(r"(?<![\w.])/tmp/", "$TMPDIR/", text)


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000.0)
    return out


def machine() -> dict:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_results(name: str, payload: dict, markdown: str) -> tuple[Path, Path]:
    """Write `<name>.json` (with the machine) and `<name>.md`, and print the Markdown and both paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    js = RESULTS / f"{name}.json"
    md = RESULTS / f"{name}.md"
    js.write_text(repo_relative(json.dumps({"machine": machine(), **payload}, indent=1)))
    markdown = repo_relative(markdown)
    md.write_text(markdown)
    print(markdown)
    print(f"written: {js}, {md}")
    return js, md


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@contextlib.contextmanager
def classifier_process(models: Path, *flags: str) -> Iterator[tuple[str, str]]:
    """The classifier service in its own process, as deployed (`ferlite serve classifier`, its
    embedded Triton beside it), on free ports; yields (classifier address, Triton gRPC address).

    Its own process, not a thread of the benchmark: a client and a server sharing one interpreter
    share its GIL, and whatever the benchmark runs beside them (an ONNX Runtime baseline) changes
    the process's malloc behaviour; neither happens in a deployment."""
    from ferlite.app.stack import wait_healthy
    from ferlite.services.classifier.triton import free_port
    from ferlite.services.common.processes import die_with_parent

    port, metrics = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "ferlite", "serve", "classifier", "--port", str(port), "--metrics-port", "-1",
                "--model-dir", str(models), "--repository-dir", tmp, "--triton-metrics-port", str(metrics),
                "--min-val-accuracy", "0", "--max-batch", "64", "--log-level", "WARNING", *flags]
        with open(Path(tmp) / "classifier.log", "wb") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=die_with_parent())
        try:
            wait_healthy(f"127.0.0.1:{port}", 180, proc)
            from ferlite.services.classifier.server import embedded_triton_url

            yield f"127.0.0.1:{port}", embedded_triton_url(tmp)
        except BaseException:
            print((Path(tmp) / "classifier.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

