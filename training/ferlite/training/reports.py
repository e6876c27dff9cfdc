"""`ferlite compare`: the paper's Table 1 for a set of runs, as Markdown, CSV and JSON, plus curves."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from . import models

COLUMNS = [
    ("Model", "display"), ("Test Accuracy", "accuracy"), ("Loss", "loss"),
    ("Precision", "precision_macro"), ("Recall", "recall_macro"), ("F1-Score", "f1_macro"),
    ("Parameter", "params_m"), ("Backbone params", "params_backbone"), ("ECE", "ece"),
    ("ms/img (b=1)", "latency_ms_batch1"), ("ms/img (b=8)", "latency_ms_batch8"),
    ("Size (MB)", "size_mb"), ("n test", "n"),
]


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders (holding evaluation.json) given directly or one level below the given paths."""
    runs: list[Path] = []
    for path in paths:
        if (path / "evaluation.json").exists():
            runs.append(path)
        elif path.is_dir():
            runs += sorted(p for p in path.iterdir() if (p / "evaluation.json").exists())
    if not runs:
        raise FileNotFoundError(f"no evaluated runs (evaluation.json) under {', '.join(map(str, paths))}")
    return runs


def _row(run: Path) -> dict:
    ev = json.loads((run / "evaluation.json").read_text())
    arch = ev.get("architecture", run.name)
    display = models.REGISTRY[arch].display if arch in models.REGISTRY else arch
    return {
        **{k: ev.get(k) for _, k in COLUMNS},
        "architecture": arch,
        "display": display,
        "params_m": f"{ev['params_backbone'] / 1e6:.2f} M",
        "size_mb": round(ev["size_bytes"] / 1e6, 2) if ev.get("size_bytes") else None,
        "run": str(run),
    }


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value >= 10 else f"{value:.3f}"
    return "" if value is None else str(value)


def compare(paths: list[Path], out: Path) -> dict[str, Path]:
    rows = sorted((_row(r) for r in find_runs(paths)), key=lambda r: -(r["accuracy"] or 0))
    out.mkdir(parents=True, exist_ok=True)
    header = "| " + " | ".join(c for c, _ in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule] + ["| " + " | ".join(_fmt(r[k]) for _, k in COLUMNS) + " |" for r in rows]
    md = out / "comparison.md"
    md.write_text("Model evaluation results (form of the paper's Table 1; Parameter = backbone "
                  "parameters; Precision/Recall/F1 macro-averaged).\n\n" + "\n".join(lines) + "\n")
    with (out / "comparison.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["architecture", *[k for _, k in COLUMNS], "run"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "comparison.json").write_text(json.dumps(rows, indent=1))
    files = {"markdown": md, "csv": out / "comparison.csv", "json": out / "comparison.json"}
    curves = plot_curves([Path(r["run"]) for r in rows], out / "training_curves.png")
    if curves:
        files["curves"] = curves
    return files


def plot_curves(runs: list[Path], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    for run in runs:
        hist_path = run / "history.json"
        if not hist_path.exists():
            continue
        history = json.loads(hist_path.read_text())
        for ax, key in zip(axes, ("accuracy", "loss"), strict=True):
            series = [v for stage in ("head", "finetune") for v in history.get(stage, {}).get(f"val_{key}", [])]
            if series:
                ax.plot(range(1, len(series) + 1), series, label=run.name)
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    for ax, key in zip(axes, ("validation accuracy", "validation loss"), strict=True):
        ax.set_xlabel("epoch (head, then fine-tuning)")
        ax.set_title(key)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
