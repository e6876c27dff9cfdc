#!/usr/bin/env python3
"""Benchmark: the paper's comparison (all four architectures) on real data, within a CPU budget.

Runs `ferlite train` for every architecture on
  * CK+ 48×48 (`ck48/`), split 70/15/15 subject-disjoint (file prefix Sxxx), `contempt` dropped;
  * FER2013: `fer2013/train` split 85/15 into train/validation, tested on `fer2013/publictest`
    with images byte-identical to any training image removed;
then writes each dataset's Table 1 (Markdown/CSV/JSON), curves and confusion matrices to
`benchmarks/results/training/<dataset>/`, and a summary with the budget to
`benchmarks/results/training.md`. Model selection uses validation loss only; test figures are
computed once per model.

Usage: python benchmarks/train_compare.py --data-root ../shared/data [--datasets ck48,fer2013]
       [--image-size 64] [--epochs 30] [--archs all] [--weights none|imagenet|PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.common import repo_relative  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PAPER = {"MobileNetV2": 0.92, "EfficientNetB0": 0.83, "MobileNetV3Large": 0.77, "MobileNetV3Small": 0.45}


def dataset_args(name: str, root: Path) -> list[str]:
    if name == "ck48":
        return ["--data", str(root / "ck48"), "--split", "0.7,0.15,0.15"]
    if name == "fer2013":
        return ["--data", str(root / "fer2013" / "train"), "--test-data", str(root / "fer2013" / "publictest"),
                "--split", "0.85,0.15"]
    raise SystemExit(f"unknown dataset {name!r}: choose ck48 or fer2013")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--datasets", default="ck48,fer2013")
    p.add_argument("--archs", default="all", help="comma-separated architectures or all")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--head-epochs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs (early stopping on val loss)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="fine-tuning learning rate")
    p.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=True,
                   help="balanced class weights (higher macro recall on rare classes, lower accuracy)")
    p.add_argument("--weights", default="none", help="imagenet where it can be downloaded; none here")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench")
    p.add_argument("--tag", default="", help="suffix for the run and results folders, so a longer or "
                   "different budget on one dataset sits beside the main table instead of replacing it")
    p.add_argument("--extra", default="", help="extra arguments for ferlite train, space-separated")
    p.add_argument("--collect", action="store_true",
                   help="only rebuild training.md (adding validation figures from the run folders when present)")
    args = p.parse_args()
    if args.collect:
        for path in sorted((RESULTS / "training").glob("*/summary.json")):
            entry = json.loads(path.read_text())
            out = args.runs / Path(entry["rows"][0]["run"]).parent.name if entry["rows"] else None
            if out is not None and out.is_dir():
                entry["rows"] = with_validation(entry["rows"], out)
                path.write_text(json.dumps(entry, indent=1))
        write_summary()
        return 0
    if not args.data_root.is_dir():
        raise SystemExit(f"data root not found: {args.data_root} (pass --data-root)")
    archs = [] if args.archs == "all" else [a for x in args.archs.split(",") for a in ("--arch", x)]
    for name in args.datasets.split(","):
        label = f"{name}-{args.tag}" if args.tag else name
        out = args.runs / f"{label}-{args.image_size}px"
        cmd = [sys.executable, "-m", "ferlite", "train", *dataset_args(name, args.data_root), *archs,
               "--image-size", str(args.image_size), "--weights", args.weights,
               "--head-epochs", str(args.head_epochs), "--finetune-epochs", str(args.epochs),
               "--finetune-layers", "all", "--finetune-lr", str(args.lr), "--batch-size", str(args.batch_size),
               "--patience", "8", *(["--class-weights"] if args.class_weights else []), "--out", str(out),
               *args.extra.split()]
        print("$ " + " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - start
        dest = RESULTS / "training" / label
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("comparison.md", "comparison.csv", "comparison.json", "training_curves.png", "run.json"):
            if (out / f).exists() and f.endswith(".png"):
                shutil.copy(out / f, dest / f)
            elif (out / f).exists():  # text: paths relative to the repository, not this machine's
                (dest / f).write_text(repo_relative((out / f).read_text()))
        for run in sorted(out.iterdir()):
            if (run / "evaluation.json").exists():
                shutil.copy(run / "evaluation.json", dest / f"{run.name}_evaluation.json")
                shutil.copy(run / "evaluation_confusion.png", dest / f"{run.name}_confusion.png")
        rows = with_validation(json.loads((out / "comparison.json").read_text()), out)
        info = json.loads((out / "run.json").read_text())
        entry = {"dataset": label, "seconds": round(seconds), "info": info, "rows": rows,
                 "budget": budget_text(args)}
        (dest / "summary.json").write_text(repo_relative(json.dumps(entry, indent=1)))
    write_summary()
    return 0


def with_validation(rows: list[dict], out: Path) -> list[dict]:
    """Add each model's validation accuracy at its lowest validation loss (the checkpoint kept), so the
    table shows which model validation picks without looking at the test figures."""
    for row in rows:
        history = out / row["architecture"] / "history.json"
        if history.exists():
            stages = json.loads(history.read_text())
            h = stages.get("finetune") or stages["head"]
            best = min(range(len(h["val_loss"])), key=h["val_loss"].__getitem__)
            row["val_accuracy"] = h["val_accuracy"][best]
    return rows


def budget_text(args: argparse.Namespace) -> str:
    return (f"image size {args.image_size}×{args.image_size}, weights `{args.weights}`, {args.head_epochs} head "
            f"epochs on cached features, then up to {args.epochs} fine-tuning epochs of the whole network (early "
            f"stopping on validation loss, patience 8), batch {args.batch_size}, AdamW with cosine decay from "
            f"{args.lr}, label smoothing 0.1, "
            f"{'balanced class weights' if args.class_weights else 'no class weights'}, "
            "augmentation (rotation, flip, zoom, brightness)"
            f"{'; ' + args.extra if args.extra else ''}")


def write_summary() -> None:
    """training.md from every dataset's summary.json, so datasets can be run separately."""
    lines = ["# Training benchmark: the paper's comparison on real data", "",
             "Generated by `benchmarks/train_compare.py`; CPU only (2 cores). Models selected on validation "
             "loss; each test figure computed once.", ""]
    for path in sorted((RESULTS / "training").glob("*/summary.json")):
        entry = json.loads(path.read_text())
        info = entry["info"]
        chosen = max(entry["rows"], key=lambda r: r.get("val_accuracy", -1))["display"]
        lines += [f"## {entry['dataset']}", "", f"Budget: {entry['budget']}.", "",
                  f"Images: {info['counts']}; test duplicates of training images removed: "
                  f"{info['test_duplicates_removed']}; wall time {entry['seconds']} s for all models.", "",
                  f"Picked on validation accuracy: **{chosen}**.", "",
                  "| Model | Val accuracy | Test accuracy | Macro F1 | Loss | ECE | Backbone params | Paper accuracy |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in entry["rows"]:
            val = f"{r['val_accuracy']:.3f}" if "val_accuracy" in r else "-"
            lines.append(f"| {r['display']} | {val} | {r['accuracy']:.3f} | {r['f1_macro']:.3f} | {r['loss']:.3f} | "
                         f"{r['ece']:.3f} | {r['params_backbone']:,} | {PAPER.get(r['display'], '')} |")
        lines.append("")
    lines += ["The paper's accuracies come from its own (unpublished) dataset with ImageNet weights at 224×224; "
              "the published MobileNetV2 figure on FER2013 is 67.9 %.", ""]
    (RESULTS / "training.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
