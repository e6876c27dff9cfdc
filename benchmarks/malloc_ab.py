#!/usr/bin/env python3
"""Benchmark: the classifier with and without its malloc thresholds (`malloc_tuning`), same run.

The thresholds are process-wide and read by Triton at start-up, so each side runs in its own
child process (classifier service, its embedded Triton and the client, as in classifier_bench.py);
the two sides alternate, `--rounds` times each, and the figures are medians over rounds. Each child
times the service and the bare model (ONNX Runtime in-process, the same file) in alternating blocks,
so every ratio has its own baseline. Also reported: each child's peak resident memory, the price
of keeping freed buffers.

Writes benchmarks/results/malloc.{json,md}.
Usage: python benchmarks/malloc_ab.py [--models modelpack] [--rounds 3] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import write_results
from ferlite.base.model_metadata import PACK_DIR, find_models

BATCHES = (1, 8)


def worker(models: Path, tuning: bool, requests: int) -> dict:
    """One side: start the classifier (tuned or not), measure every architecture, return figures."""
    import grpc
    import numpy as np
    import onnxruntime as ort

    from benchmarks.classifier_bench import THREADS, bare_input, interleaved, request
    from ferlite.services.classifier.config import ClassifierConfig
    from ferlite.services.classifier.server import build
    from ferlite.v1 import classifier_pb2_grpc as pb_grpc

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = build(ClassifierConfig(min_val_accuracy=0.0, port=0, metrics_port=-1, model_dir=str(models),
                                        triton_http_port=0, triton_grpc_port=0, triton_metrics_port=0,
                                        repository_dir=tmp, malloc_tuning=tuning)).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        stub = pb_grpc.ClassifierStub(channel)
        try:
            for meta in find_models(models):
                options = ort.SessionOptions()
                options.intra_op_num_threads = THREADS
                session = ort.InferenceSession(str(models / meta.architecture / meta.onnx_file()), options,
                                               providers=["CPUExecutionProvider"])
                for batch in BATCHES:
                    s = meta.input_size
                    pixels = np.random.default_rng(0).integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
                    req, x = request(pixels, meta.architecture), bare_input(pixels, meta.flip_tta)
                    stub.Classify(req)
                    session.run(None, {"image": x})
                    service, bare = interleaved(lambda r=req: stub.Classify(r),
                                                lambda x=x, s=session: s.run(None, {"image": x}), requests)
                    out[f"{meta.architecture}/{batch}"] = {"service_ms": service["p50_ms"], "bare_ms": bare["p50_ms"]}
        finally:
            channel.close()
            server.stop(0)
    return {"figures": out, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--rounds", type=int, default=3, help="child processes per side, alternating [3]")
    p.add_argument("--requests", type=int, default=200, help="calls per architecture and batch size [200]")
    p.add_argument("--worker", choices=["on", "off"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.models, args.worker == "on", args.requests)))
        return 0
    runs: dict[str, list[dict]] = {"on": [], "off": []}
    for i in range(args.rounds):
        for side in (("off", "on") if i % 2 == 0 else ("on", "off")):  # neither side always goes first
            child = subprocess.run([sys.executable, __file__, "--worker", side, "--models", str(args.models),
                                    "--requests", str(args.requests)], capture_output=True, text=True, check=True)
            runs[side].append(json.loads(child.stdout.strip().splitlines()[-1]))
            print(f"round {i + 1} malloc_tuning {side}: done", flush=True)

    def med(side: str, key: str, field: str) -> float:
        return statistics.median(r["figures"][key][field] for r in runs[side])

    def ratio(side: str, key: str) -> float:
        return statistics.median(r["figures"][key]["service_ms"] / r["figures"][key]["bare_ms"] for r in runs[side])

    keys = list(runs["on"][0]["figures"])
    rows = {k: {side: {"service_ms": med(side, k, "service_ms"), "bare_ms": med(side, k, "bare_ms"),
                       "ratio": ratio(side, k)} for side in ("off", "on")} for k in keys}
    rss = {side: statistics.median(r["peak_rss_mb"] for r in runs[side]) for side in ("off", "on")}
    lines = ["# Classifier with and without malloc tuning", "",
             f"`malloc_tuning` (glibc mmap threshold 4 MiB, trim threshold 16 MiB; on by default) off and on, each "
             f"side in its own child process (classifier service, embedded Triton, client), {args.rounds} rounds "
             f"alternating, medians over rounds; {args.requests} calls per row, the service and the bare model "
             "(ONNX Runtime in-process, the same file) timed in alternating blocks inside each child. "
             "2-core CPU.", "",
             "| architecture | batch | service p50 ms, off | on | change | ratio to bare, off | on |",
             "|---|---|---|---|---|---|---|"]
    for key, row in rows.items():
        arch, batch = key.split("/")
        off, on = row["off"], row["on"]
        lines.append(f"| {arch} | {batch} | {off['service_ms']:.2f} | {on['service_ms']:.2f} | "
                     f"{on['service_ms'] / off['service_ms'] - 1:+.0%} | {off['ratio']:.2f} | {on['ratio']:.2f} |")
    lines += ["", f"Peak resident memory of a child (client, classifier and the bare sessions; Triton is its own "
                  f"process): off {rss['off']:.0f} MB, on {rss['on']:.0f} MB.", ""]
    write_results("malloc", {"models": str(args.models), "rounds": args.rounds, "requests": args.requests,
                             "rows": rows, "peak_rss_mb": rss, "runs": runs}, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
