"""The training CLI: `ferlite train`, `evaluate`, `compare`, `export` and `synth`.

TensorFlow is imported only once a command has parsed its arguments, so `--help` is instant and
argument errors are reported before the heavy import.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ferlite.base.architectures import ARCHITECTURES
from ferlite.base.cli import HelpFormatter

from .datasets import DatasetError, ImageSet, load_dataset, load_sources, parse_class_map

log = logging.getLogger("ferlite.training")


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of fractions") from None
    if len(values) not in (2, 3) or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"{text!r}: give 3 fractions (or 2 with --test-data) summing to 1")
    return values


def _guard(prog: str, body: Callable[[], int]) -> int:
    """Turn expected user errors into one clear line and exit code 2 (models.WeightsError is a
    ValueError: nothing here imports TensorFlow, so a data error comes before its start-up)."""
    try:
        return body()
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------------------- train

def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ferlite train",
        description="Train one or more of the paper's architectures with two-stage transfer learning "
        "(frozen backbone on cached features, then fine-tuning), evaluate each once on the test split, "
        "and write a comparison table. Data: a folder with one sub-folder per class, or a FER2013 CSV.",
        formatter_class=HelpFormatter)
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, type=Path, help="folder-per-class dataset or FER2013 .csv")
    d.add_argument("--test-data", type=Path, help="separate test set; --data is then split train/val "
                   "and test images byte-identical to any --data image are removed")
    d.add_argument("--split", type=_fractions, default=None,
                   help="train,val,test fractions, or train,val with --test-data (default: 0.7,0.15,0.15; with "
                        "--test-data 0.85,0.15)")
    d.add_argument("--class-map", action="append", default=[], metavar="FOLDER=LABEL",
                   help="map a folder outside the seven labels (contempt=disgust) or drop it (contempt=drop); "
                        "repeatable")
    d.add_argument("--group-pattern", default=r"^(S\d+)_", help="regex whose group 1 in a file name is the "
                   "subject id (no subject in two splits); empty disables")
    d.add_argument("--crop-faces", action="store_true", help="crop the largest face with OpenCV's Haar "
                   "detector (for uncropped photos; pre-cropped datasets need nothing)")
    d.add_argument("--limit-per-class", type=int, help="use at most N images per class (quick runs)")
    d.add_argument("--image-size", type=int, default=224, help="model input side in pixels (>= 32)")
    m = p.add_argument_group("model and training")
    m.add_argument("--arch", action="append", choices=[*ARCHITECTURES, "all"], help="architecture "
                   "(repeatable; default: all)")
    m.add_argument("--weights", default="imagenet", help="imagenet, none, or a backbone weights file")
    m.add_argument("--dropout", type=float, default=0.3, help="dropout before the classification head")
    m.add_argument("--batch-size", type=int, default=32, help="images per training step")
    m.add_argument("--head-epochs", type=int, default=20, help="stage 1 epochs (frozen backbone)")
    m.add_argument("--finetune-epochs", type=int, default=10, help="stage 2 epochs (0 skips)")
    m.add_argument("--finetune-layers", default="40", help="top backbone layers to unfreeze, or 'all'")
    m.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw", help="optimizer of both stages")
    m.add_argument("--head-lr", type=float, default=1e-3, help="learning rate of stage 1 (the head)")
    m.add_argument("--finetune-lr", type=float, default=1e-4, help="learning rate of stage 2 (fine-tuning)")
    m.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    m.add_argument("--schedule", choices=["cosine", "plateau"], default="cosine",
                   help="learning-rate schedule: cosine decay, or divide on a validation plateau")
    m.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing of the loss")
    m.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    m.add_argument("--class-weights", action="store_true", help="balanced class weights")
    m.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no augmentation in stage 2 (rotation, flip, zoom, brightness are on by default)")
    m.add_argument("--seed", type=int, default=42, help="seed of splits, initialisation and augmentation")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, help="run folder (default: runs/<date-time>)")
    o.add_argument("--export", type=Path, metavar="MODEL_DIR", help="also export each model here")
    o.add_argument("--formats", default="savedmodel,onnx,tflite,tflite_int8", help="export formats")
    o.add_argument("--no-latency", dest="latency", action="store_false", help="skip latency timing")
    o.add_argument("--demo-model", action="store_true",
                   help="mark exported models as demo models (synthetic training data; labels for real faces mean "
                        "nothing): the stack warns when it serves them")
    return p


def _load_splits(args: argparse.Namespace) -> tuple[dict[str, ImageSet], dict]:
    from .splits import exclude_duplicates, split_indices, write_manifest

    options = dict(class_map=parse_class_map(args.class_map), group_pattern=args.group_pattern,
                   crop_faces=args.crop_faces, limit_per_class=args.limit_per_class, seed=args.seed)
    data = load_dataset(args.data, args.image_size, **options)
    removed = 0
    if args.test_data:
        fractions = args.split or (0.85, 0.15)
        if len(fractions) != 2:
            raise ValueError("with --test-data, --split takes two fractions (train,val)")
        test = load_dataset(args.test_data, args.image_size, **options)
        test, removed = exclude_duplicates(test, data)
        idx = split_indices(data.samples, fractions, args.seed)
        sets = {"train": data.subset(idx["train"]), "val": data.subset(idx["val"]), "test": test}
    else:
        fractions = args.split or (0.7, 0.15, 0.15)
        if len(fractions) != 3:
            raise ValueError("--split takes three fractions (train,val,test) without --test-data")
        idx = split_indices(data.samples, fractions, args.seed)
        sets = {name: data.subset(i) for name, i in idx.items()}
    for name, subset in sets.items():
        if not subset.samples:
            raise DatasetError(f"the {name} split is empty: the dataset is too small for these fractions")
    info = {
        "data": str(args.data), "test_data": str(args.test_data) if args.test_data else None,
        "image_size": args.image_size, "crop_faces": args.crop_faces, "class_map": args.class_map,
        "split": list(fractions), "seed": args.seed, "skipped_files": len(data.skipped),
        "dropped_classes": data.dropped, "test_duplicates_removed": removed,
        "counts": {n: len(s.samples) for n, s in sets.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_manifest(args.out / "split.json", sets, info)
    (args.out / "run.json").write_text(json.dumps(info, indent=1))
    return sets, info


def train_main(argv: Sequence[str]) -> int:
    parser = train_parser()
    args = parser.parse_args(argv)
    archs = list(ARCHITECTURES) if not args.arch or "all" in args.arch else list(dict.fromkeys(args.arch))
    if args.image_size < 32:
        parser.error("--image-size must be at least 32")
    layers = None if args.finetune_layers == "all" else args.finetune_layers
    if layers is not None and not layers.isdigit():
        parser.error("--finetune-layers must be a number or 'all'")
    args.out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")

    def body() -> int:
        _quiet_tensorflow()
        sets, info = _load_splits(args)  # the data first: its errors come before TensorFlow's start-up
        from .evaluate import evaluate_model, write_evaluation
        from .export import export_model
        from .reports import compare
        from .train import TrainConfig, train

        print(f"data: {info['counts']} (skipped {info['skipped_files']} unreadable, "
              f"removed {info['test_duplicates_removed']} test duplicates) -> {args.out}")
        for arch in archs:
            config = TrainConfig(
                architecture=arch, image_size=args.image_size, weights=args.weights, dropout=args.dropout,
                batch_size=args.batch_size, head_epochs=args.head_epochs,
                finetune_epochs=args.finetune_epochs, finetune_layers=None if layers is None else int(layers),
                optimizer=args.optimizer, head_lr=args.head_lr, finetune_lr=args.finetune_lr,
                weight_decay=args.weight_decay, schedule=args.schedule,
                label_smoothing=args.label_smoothing, patience=args.patience,
                class_weights=args.class_weights, augment=args.augment, seed=args.seed)
            run_dir = args.out / arch
            print(f"== {arch}: training in {run_dir}")
            start = time.perf_counter()
            model = train(config, sets["train"], sets["val"], run_dir)
            report = evaluate_model(model, sets["test"], run_dir / "model.keras", measure_latency=args.latency)
            report["train_seconds"] = round(time.perf_counter() - start, 1)
            write_evaluation(report, run_dir)
            print(f"   test accuracy {report['accuracy']:.4f}  macro F1 {report['f1_macro']:.4f}  "
                  f"loss {report['loss']:.4f}  ({report['train_seconds']} s)")
            if args.export:
                export_model(model, args.export, sets["val"], sets["test"],
                             formats=tuple(args.formats.split(",")), run_info=info, evaluation=report,
                             synthetic=args.demo_model)
                print(f"   exported to {args.export / arch}")
        files = compare([args.out], args.out)
        print(files["markdown"].read_text())
        return 0

    return _guard("ferlite train", body)


# ------------------------------------------------------------------------------------- evaluate

def _run_sets(run_dir: Path, names: Sequence[str]) -> dict[str, ImageSet]:
    manifest_path = run_dir.parent / "split.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"no split manifest at {manifest_path}: is {run_dir} a `ferlite train` run?")
    manifest = json.loads(manifest_path.read_text())
    return {n: load_sources(manifest["splits"][n], manifest["image_size"], manifest.get("crop_faces", False))
            for n in names}


def _load_model(run_dir: Path):
    import keras

    path = run_dir / "model.keras"
    if not path.exists():
        raise FileNotFoundError(f"no trained model at {path}")
    return keras.models.load_model(path)


def evaluate_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="ferlite evaluate",
        description="Evaluate a trained run on its test split (from the run's manifest) or on another labelled folder.")
    p.add_argument("--run", required=True, type=Path, help="a run's architecture folder (runs/X/mobilenet_v2)")
    p.add_argument("--data", type=Path, help="evaluate on this folder-per-class dataset instead")
    p.add_argument("--name", default=None,
                   help="report name (default: evaluation, or evaluation_<data folder> with --data)")
    p.add_argument("--class-map", action="append", default=[], metavar="FOLDER=LABEL",
                   help="with --data: map a folder outside the seven labels or drop it (as for train); repeatable")
    p.add_argument("--no-latency", dest="latency", action="store_false", help="skip latency timing")
    args = p.parse_args(argv)

    def body() -> int:
        _quiet_tensorflow()
        from .evaluate import evaluate_model, write_evaluation

        model = _load_model(args.run)
        if args.data:
            test = load_dataset(args.data, int(model.input_shape[1]), class_map=parse_class_map(args.class_map))
            name = args.name or f"evaluation_{args.data.name}"
        else:
            test = _run_sets(args.run, ["test"])["test"]
            name = args.name or "evaluation"
        report = evaluate_model(model, test, args.run / "model.keras", measure_latency=args.latency)
        path = write_evaluation(report, args.run, name)
        print(f"accuracy {report['accuracy']:.4f}  macro F1 {report['f1_macro']:.4f}  loss "
              f"{report['loss']:.4f}  ECE {report['ece']:.4f}  n={report['n']}  -> {path}")
        return 0

    return _guard("ferlite evaluate", body)


# -------------------------------------------------------------------------------------- compare

def compare_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="ferlite compare",
        description="Write the paper's Table 1 (Markdown, CSV, JSON) and training curves for evaluated runs.")
    p.add_argument("runs", nargs="+", type=Path, help="run folders, or folders holding them")
    p.add_argument("--out", type=Path, help="output folder (default: the first run folder)")
    args = p.parse_args(argv)

    def body() -> int:
        from .reports import compare

        files = compare(args.runs, args.out or args.runs[0])
        print(files["markdown"].read_text())
        print("written: " + ", ".join(str(f) for f in files.values()))
        return 0

    return _guard("ferlite compare", body)


# --------------------------------------------------------------------------------------- export

def export_main(argv: Sequence[str]) -> int:
    from .export import DEFAULT_FORMATS, FORMATS

    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="ferlite export",
        description="Export trained runs for serving (SavedModel, ONNX, TFLite fp32/int8), each checked against "
                    "Keras, with metadata (labels, input, drift reference) and a model card.")
    p.add_argument("--run", required=True, action="append", type=Path,
                   help="a run's architecture folder (repeatable)")
    p.add_argument("--out", type=Path, default=Path("models"), help="model directory")
    p.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                   help="comma-separated subset of " + ",".join(FORMATS))
    p.add_argument("--version", type=int, default=1, help="model version recorded (and used by Triton)")
    args = p.parse_args(argv)
    formats = tuple(f for f in args.formats.split(",") if f)
    bad = set(formats) - set(FORMATS)
    if bad:
        p.error(f"unknown format(s) {', '.join(sorted(bad))}; choose from {', '.join(FORMATS)}")

    def body() -> int:
        _quiet_tensorflow()
        from .export import export_model

        for run_dir in args.run:
            model = _load_model(run_dir)
            sets = _run_sets(run_dir, ["val", "test"])
            evaluation = json.loads((run_dir / "evaluation.json").read_text()) \
                if (run_dir / "evaluation.json").exists() else None
            info = json.loads((run_dir.parent / "run.json").read_text()) \
                if (run_dir.parent / "run.json").exists() else {}
            meta = export_model(model, args.out, sets["val"], sets["test"], formats=formats,
                                version=args.version, run_info=info, evaluation=evaluation)
            for fmt, check in meta.checks.items():
                print(f"{meta.architecture:<20} {fmt:<12} accuracy {check['accuracy']:.4f}  "
                      f"max|diff| {check['max_abs_diff']:.2e}")
        return 0

    return _guard("ferlite export", body)


def synth_main(argv: Sequence[str]) -> int:
    from .synthetic import main

    return main(list(argv))
