"""Fetch and run NVIDIA's `perf_analyzer` (shipped inside the tritonclient==2.51.0 wheel).

That wheel pins protobuf < 5, which the services cannot share, so it is never installed: pip
downloads it into a cache folder (from the package registry) and only the binary is extracted.
It needs libb64 and libcudart, which the nvidia-pytriton wheel carries in nvidia_pytriton.libs.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / "results" / "tmp" / "perf_analyzer"


def perf_analyzer_binary() -> Path:
    binary = CACHE / "perf_analyzer"
    if binary.exists():
        return binary
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "-d", str(CACHE), "tritonclient==2.51.0"], check=True)
    wheel = next(CACHE.glob("tritonclient-2.51.0-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        binary.write_bytes(z.read("tritonclient-2.51.0.data/data/bin/perf_analyzer"))
    binary.chmod(0o755)
    return binary


def _libs_dir() -> Path:
    import pytriton

    return Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"


def _link_sonames(libs: Path) -> Path:
    """perf_analyzer asks for libb64.so.0d and libcudart.so.12; the wheel's copies carry hashes."""
    links = CACHE / "libs"
    links.mkdir(parents=True, exist_ok=True)
    for want, pattern in (("libb64.so.0d", "libb64-*.so.0d"), ("libcudart.so.12", "libcudart-*.so.12*")):
        target = next(libs.glob(pattern))
        link = links / want
        if not link.exists():
            link.symlink_to(target)
    return links


def run(model: str, url: str, shape: str, batch: int = 1, concurrency: str = "1:4", seconds: int = 3) -> list[dict]:
    binary = perf_analyzer_binary()
    libs = _libs_dir()
    env = {**os.environ, "LD_LIBRARY_PATH": f"{_link_sonames(libs)}:{libs}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    out = CACHE / f"{model}_b{batch}.csv"
    cmd = [str(binary), "-m", model, "-u", url, "-i", "grpc", "--shape", f"image:{shape}", "-b", str(batch),
           "--concurrency-range", concurrency, "--measurement-interval", str(seconds * 1000), "-f", str(out),
           # On 2 shared cores three windows rarely agree within the default 10 %: allow 25 %, more tries.
           "--stability-percentage", "25", "--max-trials", "20"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"perf_analyzer failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    with out.open() as fh:
        return list(csv.DictReader(fh))
