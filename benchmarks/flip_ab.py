#!/usr/bin/env python3
"""Benchmark: flip averaging inside the Triton model vs in the classifier, same run.

Two embedded Tritons serve the same pack models, one repository as built (the model mirrors each
face itself: `flip_tta` "1"), one with that parameter set to "0" (the classifier sends each face
and its mirror image, as before). The classifier's Triton client (`TritonBackend`, shared memory)
times a batch of faces with flip averaging against each, in alternating blocks; both give the same
probabilities (checked). This is the hop the change moves: classifier -> Triton -> back.

Writes benchmarks/results/flip.{json,md}.
Usage: python benchmarks/flip_ab.py [--models modelpack] [--requests 200]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.classifier_bench import interleaved
from benchmarks.common import write_results
from ferlite.base.model_metadata import PACK_DIR, find_models
from ferlite.services.classifier.backend import TritonBackend
from ferlite.services.classifier.config import ClassifierConfig
from ferlite.services.classifier.repository import build_repository
from ferlite.services.classifier.triton import EmbeddedTriton


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--requests", type=int, default=200, help="calls per architecture and side [200]")
    p.add_argument("--batch", type=int, default=8, help="faces per call [8]")
    p.add_argument("--archs", default="", help="comma-separated architectures [every pack model that flips]")
    args = p.parse_args()
    wanted = set(filter(None, args.archs.split(",")))
    metas = [m for m in find_models(args.models) if m.flip_tta and (not wanted or m.architecture in wanted)]
    rows: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        repos = {side: Path(tmp) / side for side in ("in_model", "in_classifier")}
        service = ClassifierConfig()  # the repository as the classifier builds it: its threads and batching
        for repo in repos.values():
            build_repository(args.models, repo, "embedded", threads=service.triton_threads,
                             instances=service.triton_instances, batch_delay_us=service.batch_delay_us,
                             precision=service.precision)
        for meta in metas:  # the "before" side: the model does not flip, the classifier mirrors
            config = repos["in_classifier"] / meta.architecture / "config.pbtxt"
            config.write_text(re.sub(r'(key: "flip_tta" value: \{ string_value: )"1"', r'\1"0"', config.read_text()))
        tritons = {side: EmbeddedTriton(repo, Path(tmp) / f"server-{side}", 0).start()
                   for side, repo in repos.items()}
        backends = {side: TritonBackend(t.grpc_url, [m.architecture for m in metas], shared_memory=True).start()
                    for side, t in tritons.items()}
        try:
            for meta in metas:
                arch, s = meta.architecture, meta.input_size
                pixels = np.random.default_rng(0).integers(0, 256, (args.batch, s, s, 3), dtype=np.uint8)
                answers = {side: b.infer(arch, pixels, 10, flip=True).probabilities for side, b in backends.items()}
                assert backends["in_model"].served(arch).flips and not backends["in_classifier"].served(arch).flips
                diff = float(np.abs(answers["in_model"] - answers["in_classifier"]).max())
                before, after = interleaved(lambda a=arch, x=pixels: backends["in_classifier"].infer(a, x, 10, True),
                                            lambda a=arch, x=pixels: backends["in_model"].infer(a, x, 10, True),
                                            args.requests)
                rows[arch] = {"input_size": s, "file": meta.onnx_file(), "max_abs_diff": diff,
                              "bytes_before": 2 * pixels.nbytes, "bytes_after": pixels.nbytes,
                              "in_classifier": before, "in_model": after}
                print(f"{arch:<20} flip in the classifier {before['p50_ms']:.2f} ms, in the model "
                      f"{after['p50_ms']:.2f} ms ({after['p50_ms'] / before['p50_ms'] - 1:+.0%}); "
                      f"answers differ by {diff:.1g}", flush=True)
        finally:
            for b in backends.values():
                b.stop()
            for t in tritons.values():
                t.stop()
    lines = ["# Flip averaging inside the Triton model", "",
             f"{args.batch} faces per call with flip averaging, from the classifier's Triton client (shared memory) to "
             "two embedded Tritons in the same run, built with the classifier's defaults (runtime threads, "
             "instances, batching, precision): one whose model mirrors the faces itself (now), one whose model "
             "does not, so the classifier sends each face and its mirror image (before). Calls alternate in blocks "
             f"of 20, {args.requests} per side; both sides give the same probabilities. 2-core CPU.", "",
             "| architecture | file | input | bytes to Triton, before | now | p50 ms, before | now | change |",
             "|---|---|---|---|---|---|---|---|"]
    for arch, r in rows.items():
        b, a = r["in_classifier"]["p50_ms"], r["in_model"]["p50_ms"]
        lines.append(f"| {arch} | {r['file']} | {r['input_size']} | {r['bytes_before'] // 1024} KB | "
                     f"{r['bytes_after'] // 1024} KB | {b:.2f} | {a:.2f} | {a / b - 1:+.0%} |")
    write_results("flip", {"models": str(args.models), "batch": args.batch, "rows": rows}, "\n".join([*lines, ""]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
