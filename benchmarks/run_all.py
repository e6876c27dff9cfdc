#!/usr/bin/env python3
"""Run the benchmarks and refresh BENCHMARKS.md from benchmarks/results/*.md.

Every figure in BENCHMARKS.md is copied from a results file that a script in this folder wrote;
nothing is typed by hand. `--only NAME,...` runs a subset; `--collect` only rebuilds the page.

Usage: python benchmarks/run_all.py --models models [--data-root ../shared/data] [--only e2e,roofline]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from ferlite.base.model_metadata import PACK_DIR

if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import repo_relative

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ORDER = ["pack", "colour", "e2e", "peer", "classifier", "flip", "triton_sweep", "roofline", "facedetect", "aggregator",
         "redis_sizing", "soak", "recovery", "training"]


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    py = [sys.executable]
    b = ROOT / "benchmarks"
    return {
        # the pack's figures from its training run (train it first: see modelpack/README.md)
        "pack": [*py, str(b / "train_pack.py"), "build", "--out", str(args.models)],
        "facedetect": [*py, str(b / "facedetect_bench.py")],
        "aggregator": [*py, str(b / "aggregator_bench.py")],
        "classifier": [*py, str(b / "classifier_bench.py"), "--models", str(args.models)],
        "flip": [*py, str(b / "flip_ab.py"), "--models", str(args.models)],
        "triton_sweep": [*py, str(b / "triton_sweep.py"), "--models", str(args.models)],
        "e2e": [*py, str(b / "e2e_bench.py"), "--models", str(args.models)],
        "roofline": [*py, str(b / "roofline.py")],
        "colour": [*py, str(b / "colour_parity.py"), "--pack", str(args.models), "--data", str(args.pack_data)],
        "soak": [*py, str(b / "soak.py"), "--models", str(args.models), "--duration", str(args.soak_seconds)],
        "recovery": [*py, str(b / "recovery.py"), "--models", str(args.models)],
        "redis_sizing": [*py, str(b / "redis_sizing.py")],
        "training": [*py, str(b / "train_compare.py"), "--data-root", str(args.data_root)],
        # fer's accuracy is measured on the model pack's own held-out faces (train_pack.py prepare's file)
        "peer": [*py, str(b / "peer_fer.py"), "--models", str(args.models), "--data", str(args.pack_data),
                 *(["--setup"] if not (RESULTS / "tmp" / "fer-venv").exists() else [])],
    }


def collect() -> Path:
    parts = ["# ferlite benchmarks", "",
             f"Assembled by `benchmarks/run_all.py` on {time.strftime('%Y-%m-%d')} from `benchmarks/results/`; "
             "each section is the Markdown its script wrote (JSON beside it). Machine: 2-core CPU, no GPU.", ""]
    for name in ORDER:
        path = RESULTS / f"{name}.md"
        if path.exists():
            text = path.read_text().strip().splitlines()
            parts += ["#" + line if line.startswith("#") else line for line in text] + [""]  # one level down
        else:
            parts += [f"## {name}", "", f"Not run yet: `python benchmarks/run_all.py --only {name}`.", ""]
    out = ROOT / "BENCHMARKS.md"
    out.write_text(repo_relative("\n".join(parts)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--pack-data", type=Path, default=ROOT / ".pack" / "fer2013.npz",
                   help="the decoded splits `benchmarks/train_pack.py prepare` writes (for the peer's accuracy)")
    p.add_argument("--only", default="", help="comma-separated subset of " + ",".join(ORDER))
    p.add_argument("--soak-seconds", type=float, default=600)
    p.add_argument("--collect", action="store_true", help="only rebuild BENCHMARKS.md")
    args = p.parse_args()
    if not args.collect:
        chosen = [n for n in (args.only.split(",") if args.only else ORDER) if n]
        unknown = set(chosen) - set(ORDER)
        if unknown:
            p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        cmds = commands(args)
        for name in chosen:
            print(f"== {name}: {' '.join(cmds[name][1:])}", flush=True)
            subprocess.run(cmds[name], check=True, cwd=ROOT)
    print(f"wrote {collect()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
