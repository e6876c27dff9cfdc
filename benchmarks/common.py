"""Helpers shared by the benchmark scripts: timing statistics and result files."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

from ferlite.app.load import percentiles  # noqa: F401  (one definition, shared with the load engine)

RESULTS = Path(__file__).resolve().parent / "results"


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
    js.write_text(json.dumps({"machine": machine(), **payload}, indent=1))
    md.write_text(markdown)
    print(markdown)
    print(f"written: {js}, {md}")
    return js, md


def median(values: list[float]) -> float:
    return float(statistics.median(values))
