#!/usr/bin/env python3
"""Benchmark: each architecture through the classifier service (gRPC -> real Triton) vs the same
ONNX model in-process (ONNX Runtime), in the same run; plus perf_analyzer against Triton directly.

Aim: service latency <= 1.5x in-process. Writes benchmarks/results/classifier.{json,md}.
Usage: python benchmarks/classifier_bench.py --models models [--requests 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort

from ferlite.base.model_metadata import PACK_DIR, find_models

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import perf_analyzer
from benchmarks.common import classifier_process, percentiles, timed, write_results
from ferlite.services.classifier.config import ClassifierConfig
from ferlite.v1 import classifier_pb2 as pb
from ferlite.v1 import classifier_pb2_grpc as pb_grpc
from ferlite.v1 import common_pb2

# The embedded Triton's runtime threads per model instance, as the service starts it (its default).
THREADS = ClassifierConfig().triton_threads
INSTANCES = ClassifierConfig().triton_instances
PRECISION = ClassifierConfig().precision


def request(batch: np.ndarray, arch: str) -> pb.ClassifyRequest:
    """uint8 crops, as face detection sends them."""
    n, s = batch.shape[0], batch.shape[1]
    return pb.ClassifyRequest(architecture=arch, crops=[common_pb2.FaceCrop(
        height=s, width=s, channels=3, dtype=common_pb2.CROP_DTYPE_UINT8, data=batch[i].tobytes()) for i in range(n)])


def bare_input(pixels: np.ndarray, flip: bool) -> np.ndarray:
    """What the service gives the model for these crops: [0, 1] floats, with the mirrored faces in
    the same batch when the model's metadata asks for flips (the same work, so the ratio is fair)."""
    x = pixels.astype(np.float32) / np.float32(255.0)
    return np.concatenate([x, x[:, :, ::-1]]) if flip else x


def interleaved(service, local, requests: int, block: int = 20) -> tuple[dict, dict]:
    """Percentiles of both, timed in alternating blocks: this machine's speed drifts by tens of
    percent over minutes (neighbours on the host), and a drift must hit both sides of a ratio.
    Blocks, not single calls, so the in-process runtime's spinning threads after its last call
    barely touch the service's first one."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(max(1, requests // block)):
        ours += timed(service, block)
        theirs += timed(local, block)
    return percentiles(ours), percentiles(theirs)


def throughput(fn, workers: int, total: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: fn(), range(total)))
    return total / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--no-perf-analyzer", dest="perf", action="store_false")
    args = p.parse_args()
    metas = {m.architecture: m for m in find_models(args.models)}
    if not metas:
        raise SystemExit(f"no exported models in {args.models}")
    results: dict = {}
    # its own process, as deployed; min_val_accuracy 0: every architecture is measured, the gated one too
    with classifier_process(args.models) as (address, triton_url):
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.ClassifierStub(channel)
        try:
            for arch, meta in metas.items():
                s = meta.input_size
                options = ort.SessionOptions()
                options.intra_op_num_threads = THREADS  # as inside Triton (the service's setting)
                served = meta.onnx_file(PRECISION)  # the file the service's Triton runs
                session = ort.InferenceSession(str(args.models / arch / served), options,
                                               providers=["CPUExecutionProvider"])
                row: dict = {"input_size": s, "file": served}
                for batch in (1, 8):
                    pixels = np.random.default_rng(0).integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
                    req = request(pixels, arch)
                    x = bare_input(pixels, meta.flip_tta)
                    stub.Classify(req)
                    session.run(None, {"image": x})
                    service, local = interleaved(lambda r=req: stub.Classify(r),
                                                 lambda x=x, s=session: s.run(None, {"image": x}), args.requests)
                    tput_service = throughput(lambda r=req: stub.Classify(r), 4, args.requests) * batch
                    tput_local = throughput(lambda x=x, s=session: s.run(None, {"image": x}), 1, args.requests) * batch
                    row[f"batch_{batch}"] = {
                        "service": service, "in_process": local, "latency_ratio": service["p50_ms"] / local["p50_ms"],
                        "service_faces_per_s": tput_service, "in_process_faces_per_s": tput_local}
                    print(f"{arch:<20} b={batch}: service p50 {service['p50_ms']:.2f} ms, in-process "
                          f"{local['p50_ms']:.2f} ms (x{service['p50_ms'] / local['p50_ms']:.2f}); "
                          f"{tput_service:.0f} vs {tput_local:.0f} faces/s", flush=True)
                if args.perf:
                    rows = perf_analyzer.run(arch, triton_url, f"{s},{s},3", batch=1, concurrency="1:2")
                    row["perf_analyzer"] = [{"concurrency": int(r["Concurrency"]),
                                             "inferences_per_s": float(r["Inferences/Second"]),
                                             "p99_us": float(r["p99 latency"])} for r in rows]
                    print(f"{arch:<20} perf_analyzer: " + ", ".join(
                        f"c={r['concurrency']} {r['inferences_per_s']:.0f} inf/s p99 {r['p99_us'] / 1000:.1f} ms"
                        for r in row["perf_analyzer"]), flush=True)
                results[arch] = row
        finally:
            channel.close()
    lines = ["# Classifier benchmark", "",
             "Each architecture's exported ONNX model through the classifier service (its own process, as "
             "deployed: gRPC, A/B router, Triton "
             f"2.51 Python backend running ONNX Runtime: {INSTANCES} instance(s), {THREADS} thread(s) each, the "
             f"service's defaults) vs the same model in-process with ONNX Runtime ({THREADS} thread(s)), same run, "
             "2-core CPU, the two timed in alternating blocks of 20 calls. Both run the same images: with the "
             "model's flip averaging the mirrored faces in the same batch (so batch 8 runs 16 images). The "
             "service's time starts from uint8 crops; the in-process time is the model run alone, on input "
             "already scaled to [0, 1] and mirrored (the bare model, the stricter baseline). "
             "Aim: service p50 <= 1.5x in-process.", "",
             f"The ONNX file is the one the service's precision setting ({PRECISION}) serves: the pack's int8 "
             "file where it kept one, else the float file; the in-process row runs the same file.", "",
             "| architecture | file | input | batch | service p50 ms | in-process p50 ms | ratio "
             "| service faces/s (4 clients) | in-process faces/s |", "|---|---|---|---|---|---|---|---|---|"]
    for arch, row in results.items():
        for b in (1, 8):
            r = row[f"batch_{b}"]
            lines.append(f"| {arch} | {row['file']} | {row['input_size']} | {b} | {r['service']['p50_ms']:.2f} | "
                         f"{r['in_process']['p50_ms']:.2f} | {r['latency_ratio']:.2f} | "
                         f"{r['service_faces_per_s']:.0f} | {r['in_process_faces_per_s']:.0f} |")
    if any("perf_analyzer" in r for r in results.values()):
        lines += ["", "perf_analyzer (tritonclient 2.51.0) against Triton's gRPC endpoint, batch 1:", "",
                  "| architecture | concurrency | inferences/s | p99 ms |", "|---|---|---|---|"]
        for arch, row in results.items():
            for r in row.get("perf_analyzer", []):
                p99 = r["p99_us"] / 1000
                lines.append(f"| {arch} | {r['concurrency']} | {r['inferences_per_s']:.0f} | {p99:.1f} |")
    md = "\n".join([*lines, ""])
    write_results("classifier", {"models": str(args.models), "results": results}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
