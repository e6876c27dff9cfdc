"""The `ferlite` command: one entry point, one subcommand per job.

Subcommands are imported lazily, so `ferlite --help` and the serving commands never pay for
importing TensorFlow. Each subcommand is a function `(argv) -> exit code` with its own parser.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ferlite.base import __version__

# name -> ("module:function" taking argv and returning an exit code, one-line help).
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("ferlite.training.commands:train_main",
              "train the paper's architectures (two-stage transfer learning) and evaluate them"),
    "evaluate": ("ferlite.training.commands:evaluate_main", "evaluate a trained run on its test split"),
    "compare": ("ferlite.training.commands:compare_main", "Table 1 of the paper for a set of runs"),
    "export": ("ferlite.training.commands:export_main",
               "export for serving: SavedModel, ONNX, TFLite fp32/int8, metadata, model card"),
    "synth": ("ferlite.training.commands:synth_main", "write a synthetic expression dataset (tests, demo)"),
    "triton-repo": ("ferlite.services.classifier.repository:main",
                    "write a Triton model repository (embedded or cluster flavour) from exported models"),
    "serve": ("ferlite.app.serve:main", "run one service: facedetect, classifier, aggregator or dashboard"),
    "up": ("ferlite.app.up:main", "the whole stack on this machine (embedded Triton and Redis) until Ctrl-C"),
    "status": ("ferlite.app.status:status_main", "which local stacks run, where, and whether each part answers"),
    "stop": ("ferlite.app.status:stop_main", "stop a local stack started with `ferlite up` (by its port offset)"),
    "stream": ("ferlite.app.stream:main", "send a video file, camera or RTSP stream through the pipeline"),
    "summary": ("ferlite.app.stream:summary_main", "a classroom's expression summary from the aggregator"),
    "erase": ("ferlite.app.erase:main", "delete everything stored about one classroom (admin token)"),
    "demo": ("ferlite.app.demo:main", "bring the stack up, stream a sample clip of real faces, print the summary"),
    "ab": ("ferlite.app.ab:main", "show or set the classifier's A/B weights in a Kubernetes cluster (ConfigMap)"),
}


def _parser() -> argparse.ArgumentParser:
    width = max((len(n) for n in COMMANDS), default=8)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="ferlite",
        description="Lightweight facial-expression recognition for inclusive classrooms.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"commands:\n{listing}\n\nRun `ferlite COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"ferlite {__version__}")
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="see below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv:
        parser.print_help()
        return 2
    args = parser.parse_args(argv[:1])
    target, _ = COMMANDS[args.command]
    # TensorFlow's C++ start-up lines (oneDNN, CPU features, absl) before a one-line error or a
    # progress bar are noise to a user: errors only, unless the user asked for more.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    module_name, _, function = target.partition(":")
    command = getattr(importlib.import_module(module_name), function)
    return int(command(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
