#!/usr/bin/env python3
"""Benchmark: the embedded Triton's instance, thread and dynamic-batching settings on this machine.

For each setting the classifier service starts afresh (its embedded Triton 2.51 with the model
pack) and serves the pack's main arm in two ways, in the same run:
  * one camera: a Classify call of `--faces` uint8 crops at a time (a classroom frame; with the
    model's flip averaging Triton runs twice as many images), p50/p99 latency;
  * `--cameras` cameras at once, each the same call, as fast as answered: faces per second and p50.
The first setting is the baseline (the defaults before this benchmark: one instance, one thread,
500 us batching delay); every row shows its ratio to it. Writes benchmarks/results/triton_sweep.{json,md}.

Usage: python benchmarks/triton_sweep.py [--models modelpack] [--requests 150]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.classifier_bench import request
from benchmarks.common import percentiles, timed, write_results
from ferlite.base.model_metadata import PACK_DIR, ModelMetadata
from ferlite.services.classifier.config import ClassifierConfig
from ferlite.services.classifier.server import build
from ferlite.v1 import classifier_pb2_grpc as pb_grpc

# (instances, threads per instance, batching delay us); the first is the baseline.
SETTINGS = [(1, 1, 500), (1, 2, 500), (1, 2, 0), (2, 1, 500), (2, 1, 0), (2, 2, 0)]


def cameras(stub, req, n: int, seconds: float) -> tuple[float, list[float]]:
    """`n` cameras sending `req` as fast as answered for `seconds`: (calls per second, latencies ms)."""
    stop, latencies, lock = time.perf_counter() + seconds, [], threading.Lock()

    def camera() -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            stub.Classify(req)
            with lock:
                latencies.append((time.perf_counter() - start) * 1000.0)

    threads = [threading.Thread(target=camera) for _ in range(n)]
    begin = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - begin), latencies


def measure(models: Path, arch: str, setting: tuple[int, int, int], args: argparse.Namespace) -> dict:
    instances, threads, delay = setting
    meta = ModelMetadata.load(models / arch)
    pixels = np.random.default_rng(0).integers(0, 256, (args.faces, meta.input_size, meta.input_size, 3),
                                               dtype=np.uint8)
    req = request(pixels, arch)
    with tempfile.TemporaryDirectory() as tmp:
        server = build(ClassifierConfig(port=0, metrics_port=-1, model_dir=str(models),
                                        triton_metrics_port=0, repository_dir=tmp,
                                        triton_instances=instances, triton_threads=threads,
                                        batch_delay_us=delay)).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = pb_grpc.ClassifierStub(channel)
        try:
            for _ in range(20):  # warm-up: sessions, shared memory, thread pools
                stub.Classify(req)
            one = percentiles(timed(lambda: stub.Classify(req), args.requests))
            rate, latencies = cameras(stub, req, args.cameras, args.seconds)
        finally:
            channel.close()
            server.stop(0)
    many = percentiles(latencies)
    row = {"instances": instances, "threads": threads, "batch_delay_us": delay, "one_camera": one,
           "cameras": {"n": args.cameras, "faces_per_s": rate * args.faces, "latency": many}}
    print(f"instances {instances} threads {threads} delay {delay:>3} us: one camera p50 {one['p50_ms']:.2f} ms "
          f"p99 {one['p99_ms']:.2f}; {args.cameras} cameras {rate * args.faces:.0f} faces/s "
          f"p50 {many['p50_ms']:.2f} ms", flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--architecture", default="mobilenet_v2", help="the arm measured [mobilenet_v2]")
    p.add_argument("--faces", type=int, default=4, help="crops per Classify call [4]")
    p.add_argument("--requests", type=int, default=150, help="one-camera calls per setting [150]")
    p.add_argument("--cameras", type=int, default=4, help="concurrent cameras [4]")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the concurrent run [10]")
    args = p.parse_args()
    meta = ModelMetadata.load(args.models / args.architecture)
    rows = [measure(args.models, args.architecture, s, args) for s in SETTINGS]
    base = rows[0]
    for r in rows:
        r["one_camera_p50_vs_baseline"] = r["one_camera"]["p50_ms"] / base["one_camera"]["p50_ms"]
        r["faces_per_s_vs_baseline"] = r["cameras"]["faces_per_s"] / base["cameras"]["faces_per_s"]
    images = args.faces * (2 if meta.flip_tta else 1)
    lines = ["# Embedded Triton settings (2-core CPU)", "",
             f"The classifier service with its embedded Triton 2.51 (Python backend, ONNX Runtime) serving "
             f"{args.architecture} ({meta.input_size} px) from the model pack, restarted for each setting; "
             f"{args.faces} uint8 crops per Classify call ({images} images through the model with flip "
             f"averaging). One camera: {args.requests} calls one after another. {args.cameras} cameras: "
             f"concurrent for {args.seconds:.0f} s. Ratios against the first row (the earlier default), same run.",
             "", "| instances | threads each | batch delay us | one camera p50 ms | p99 ms | vs baseline "
             f"| {args.cameras} cameras faces/s | vs baseline | p50 ms |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['instances']} | {r['threads']} | {r['batch_delay_us']} | {r['one_camera']['p50_ms']:.2f} | "
              f"{r['one_camera']['p99_ms']:.2f} | {r['one_camera_p50_vs_baseline']:.2f} | "
              f"{r['cameras']['faces_per_s']:.0f} | {r['faces_per_s_vs_baseline']:.2f} | "
              f"{r['cameras']['latency']['p50_ms']:.2f} |" for r in rows]
    d = ClassifierConfig()
    lines += ["", f"The service's defaults now (`ClassifierConfig`): {d.triton_instances} instance(s), "
              f"{d.triton_threads} thread(s) each, {d.batch_delay_us} us batching delay: the lowest one-camera "
              "latency whose four-camera throughput is above the old default's."]
    write_results("triton_sweep", {"architecture": args.architecture, "faces": args.faces, "rows": rows},
                  "\n".join([*lines, ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
