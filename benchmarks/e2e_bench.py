#!/usr/bin/env python3
"""Benchmark: frames end to end through the full local stack, per architecture, at 1, 4 and 8
concurrent streams; and the RSS of each service (with Triton and Redis) with all four models loaded.

One stack serves every run; the classifier's A/B policy file is rewritten to send all traffic to
one architecture at a time (it hot-reloads). Baseline in the same run: `Detect` alone (decode +
face detection, no classification or recording), so the ratio shows what classification and
recording add. Writes benchmarks/results/e2e.{json,md}.

Usage: python benchmarks/e2e_bench.py --models models [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

from ferlite.base.model_metadata import PACK_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import percentiles, write_results
from ferlite.app.client import CameraSession
from ferlite.app.load import tree_rss_kb
from ferlite.app.sample_clip import sample_jpegs
from ferlite.app.stack import LocalStack, StackConfig
from ferlite.base.architectures import ARCHITECTURES

# One session per benchmark run: event ids stay unique across runs (see facedetect.proto).
SESSION = secrets.token_hex(8)

def drive(target: str, streams: int, seconds: float, jpegs: list[bytes], detect_only: bool = False) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def one(k: int) -> None:
        with CameraSession(target, "bench", f"e2e-{k}", retries=0, session_id=SESSION) as camera:
            i = 0
            while time.monotonic() < stop_at:
                frame = jpegs[(i + k) % len(jpegs)]
                t0 = time.perf_counter()
                try:
                    if detect_only:
                        camera.detect(frame)
                    else:
                        camera.process(frame)
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1000)
                except grpc.RpcError as exc:
                    with lock:
                        errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                i += 1

    threads = [threading.Thread(target=one, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {**percentiles(latencies), "frames_per_s": len(latencies) / seconds, "errors": sum(errors.values()),
            "error_codes": errors}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--port-offset", type=int, default=3100)
    args = p.parse_args()
    jpegs = sample_jpegs()
    o = args.port_offset
    results: dict = {"per_architecture": {}}
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps({"weights": {a: 1 for a in ARCHITECTURES}}))
        # A throughput measurement: lift the per-client frame-rate limit (every client here is 127.0.0.1).
        unlimited = {"FERLITE_FACEDETECT_MAX_FPS_PER_CLIENT": "0", "FERLITE_FACEDETECT_MAX_FPS_PER_PEER": "0"}
        stack = LocalStack(StackConfig.with_port_offset(o, model_dir=args.models, data_dir=Path(tmp) / "var",
                                                        policy_file=str(policy), extra_env=unlimited)).start()
        target = f"127.0.0.1:{stack.config.facedetect_port}"
        try:
            drive(target, 2, 3, jpegs)  # warm-up
            results["detect_only"] = {n: drive(target, n, args.seconds, jpegs, detect_only=True) for n in (1, 4, 8)}
            print("detect only: " + ", ".join(f"{n} streams p50 {r['p50_ms']:.1f} ms, {r['frames_per_s']:.1f} fps"
                                              for n, r in results["detect_only"].items()), flush=True)
            for arch in ARCHITECTURES:
                policy.write_text(json.dumps({"weights": {arch: 1}, "sticky": False}))
                time.sleep(2.5)  # the classifier polls the file every second
                row = {n: drive(target, n, args.seconds, jpegs) for n in (1, 4, 8)}
                results["per_architecture"][arch] = row
                print(f"{arch:<20} " + ", ".join(
                    f"{n} streams p50 {r['p50_ms']:.1f} / p99 {r['p99_ms']:.1f} ms, {r['frames_per_s']:.1f} fps"
                    for n, r in row.items()), flush=True)
            results["rss_mb"] = {s.name: tree_rss_kb(s.proc.pid) / 1024 for s in stack.services}
        finally:
            stack.stop()
    base = results["detect_only"]
    lines = ["# End-to-end benchmark", "",
             f"Frames (640x480 JPEG, real faces) through the full local stack (`{args.models}`, embedded Triton "
             "and Redis, separate processes), 2-core CPU, each client sending as fast as answered, "
             f"{args.seconds:g} s per cell. Baseline from the same run: `Detect` alone.", "",
             "| architecture | streams | p50 ms | p99 ms | frames/s | p50 vs Detect-only | errors |",
             "|---|---|---|---|---|---|---|"]
    for n, r in base.items():
        lines.append(f"| (Detect only) | {n} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['frames_per_s']:.1f} | 1.00 "
                     f"| {r['errors']} |")
    for arch, row in results["per_architecture"].items():
        for n, r in row.items():
            lines.append(f"| {arch} | {n} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['frames_per_s']:.1f} | "
                         f"{r['p50_ms'] / base[n]['p50_ms']:.2f} | {r['errors']} |")
    lines += ["", "Resident memory with all four models loaded (service + its children):", "",
              "| service | RSS MB |", "|---|---|", *[f"| {k} | {v:.0f} |" for k, v in results["rss_mb"].items()], ""]
    md = "\n".join(lines)
    write_results("e2e", {"models": str(args.models), **results}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
