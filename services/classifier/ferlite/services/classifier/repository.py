"""Build a Triton model repository from `ferlite export` output, in two flavours from one source.

    embedded   Python-backend models running ONNX Runtime (or LiteRT) inside the `tritonserver`
               binary bundled in the nvidia-pytriton wheel, which ships only the Python backend.
    cluster    the official Triton container's native `onnxruntime` backend, with dynamic
               batching and instance groups (CPU or GPU); each model.onnx is the exported graph
               with the serving steps built in (serving_graph.py): uint8 pixels in.

Layout (both): REPO/<architecture>/config.pbtxt and REPO/<architecture>/<version>/ with the model
file (model.onnx for the cluster flavour; the pack's file name and model.py for the embedded one).
Architecture names are the registry's, so the Triton model names, metrics labels and the A/B
policy all use the same strings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ferlite.base.architectures import ARCHITECTURES
from ferlite.base.cli import HelpFormatter
from ferlite.base.model_metadata import PRECISIONS, ModelMetadata, find_models

MODEL_PY = Path(__file__).with_name("triton_model.py")


@dataclass(frozen=True)
class ModelInfo:
    """An exported model: its metadata (read once) and its folder."""

    meta: ModelMetadata
    folder: Path

    @property
    def architecture(self) -> str:
        return self.meta.architecture

    @property
    def version(self) -> int:
        return self.meta.version

    @property
    def input_size(self) -> int:
        return self.meta.input_size


def discover(model_dir: str | Path, require_all: bool = False) -> list[ModelInfo]:
    """The exported architectures under `model_dir`, in registry order."""
    root = Path(model_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"model directory not found: {root} (make one with `ferlite export`)")
    found = [ModelInfo(m, root / m.architecture) for m in find_models(root)]
    missing = [a for a in ARCHITECTURES if a not in {m.architecture for m in found}]
    if not found or (require_all and missing):
        raise FileNotFoundError(f"{root} lacks exported models for: {', '.join(missing)}")
    return found


def _config(info: ModelInfo, flavour: str, max_batch: int, instances: int, kind: str, runtime: str,
            batch_delay_us: int, model_file: str = "", threads: int = 1, source_file: str = "") -> str:
    s = info.input_size
    lines = [f'name: "{info.architecture}"']
    if flavour == "embedded":
        lines.append('backend: "python"')
    else:
        lines.append('backend: "onnxruntime"')
    lines += [
        f"max_batch_size: {max_batch}",
        # Both flavours take uint8 pixels and do the serving steps themselves (normalisation, flip
        # averaging): the Python model in NumPy, the onnxruntime backend's graph with them built in
        # (serving_graph.py). A quarter of float32's bytes, each face sent once.
        f'input [ {{ name: "image" data_type: TYPE_UINT8 dims: [ {s}, {s}, 3 ] }} ]',
        'output [ { name: "probs" data_type: TYPE_FP32 dims: [ 7 ] } ]',
        "version_policy: { latest: { num_versions: 1 } }",
        # the model averages each face with its mirror image itself (the classifier reads this back)
        f'parameters {{ key: "flip_tta" value: {{ string_value: "{int(info.meta.flip_tta)}" }} }}',
        # the model folder's file this one was made from: the classifier calibrates with its metadata
        f'parameters {{ key: "source_file" value: {{ string_value: "{source_file or model_file}" }} }}',
    ]
    if flavour == "embedded":
        model_file = model_file or ("model.onnx" if runtime == "onnxruntime" else "model_fp32.tflite")
        lines += [
            f"dynamic_batching {{ max_queue_delay_microseconds: {batch_delay_us} }}",
            f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]",
            f'parameters {{ key: "runtime" value: {{ string_value: "{runtime}" }} }}',
            f'parameters {{ key: "model_file" value: {{ string_value: "{model_file}" }} }}',
            f'parameters {{ key: "intra_op_threads" value: {{ string_value: "{threads}" }} }}',
        ]
    else:
        preferred = [b for b in (4, 8, 16, 32) if b <= max_batch]
        lines += [
            f"dynamic_batching {{ preferred_batch_size: [ {', '.join(map(str, preferred))} ] "
            f"max_queue_delay_microseconds: {batch_delay_us} }}",
            f"instance_group [ {{ count: {instances} kind: {kind} }} ]",
        ]
    return "\n".join(lines) + "\n"


def build_repository(model_dir: str | Path, out: str | Path, flavour: str = "embedded", *, max_batch: int = 64,
                     instances: int = 1, kind: str = "KIND_CPU", runtime: str = "onnxruntime",
                     require_all: bool = False, batch_delay_us: int = 500, threads: int = 1,
                     precision: str = "auto") -> list[ModelInfo]:
    """Write the repository. `batch_delay_us` is how long Triton's dynamic batcher may hold a
    request waiting for others to share its batch: latency paid by a lone request. `threads` is
    the embedded models' runtime threads per instance (the cluster's ONNX Runtime backend keeps
    its own default). `precision` picks each model's ONNX file (`ModelMetadata.onnx_file`); the
    cluster flavour stores it as `model.onnx`, the name Triton's onnxruntime backend loads."""
    if flavour not in {"embedded", "cluster"}:
        raise ValueError(f"flavour must be embedded or cluster, got {flavour!r}")
    if kind not in {"KIND_CPU", "KIND_GPU"}:
        raise ValueError(f"kind must be KIND_CPU or KIND_GPU, got {kind!r}")
    if flavour == "cluster" and runtime != "onnxruntime":
        raise ValueError("the cluster flavour serves ONNX with Triton's onnxruntime backend")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    models = discover(model_dir, require_all)
    out = Path(out)
    for info in models:
        target = out / info.architecture
        if target.exists():
            shutil.rmtree(target)
        version_dir = target / str(info.version)
        version_dir.mkdir(parents=True)
        if runtime == "onnxruntime":
            source = info.meta.onnx_file(precision, gpu=kind == "KIND_GPU")
        else:
            source = _tflite_file(info)
        if not (info.folder / source).exists():
            raise FileNotFoundError(f"{info.folder / source} is missing: export with that format")
        if flavour == "cluster":  # the exported graph with the serving steps built in
            import onnx  # only here: the embedded flavour (every classifier start) copies files

            from .serving_graph import check, serving_graph

            stored = "model.onnx"
            served = serving_graph(info.folder / source, info.meta.flip_tta)
            check(info.folder / source, served, info.meta.flip_tta, info.input_size)  # before it can serve
            onnx.save(served, str(version_dir / stored))
        else:
            stored = source
            shutil.copy2(info.folder / source, version_dir / stored)
            shutil.copy2(MODEL_PY, version_dir / "model.py")
        shutil.copy2(info.folder / "metadata.json", target / "metadata.json")
        (target / "config.pbtxt").write_text(_config(info, flavour, max_batch, instances, kind, runtime,
                                                     batch_delay_us, stored, threads, source))
    return models


def _tflite_file(info: ModelInfo) -> str:
    """model_fp32.tflite when exported, else the pack's edge file (int8 or fp16, per metadata)."""
    if (info.folder / "model_fp32.tflite").exists():
        return "model_fp32.tflite"
    return info.meta.files.get("edge", "model_fp32.tflite")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ferlite triton-repo", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("--models", default="models", help="model directory written by `ferlite export`")
    p.add_argument("--out", required=True, help="repository folder to write")
    p.add_argument("--flavour", choices=["embedded", "cluster"], default="cluster",
                   help="cluster: the official Triton container's onnxruntime backend, each model its serving graph "
                        "(uint8 pixels in, normalisation and flips inside); embedded: Python-backend models for the "
                        "bundled tritonserver")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch Triton's dynamic batcher forms")
    p.add_argument("--instances", type=int, default=1, help="model instances per architecture")
    p.add_argument("--kind", choices=["KIND_CPU", "KIND_GPU"], default="KIND_CPU",
                   help="where Triton runs the model instances (KIND_GPU on a GPU node)")
    p.add_argument("--runtime", choices=["onnxruntime", "litert"], default="onnxruntime",
                   help="embedded flavour only: which runtime the Python backend uses")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: each model's validated int8 ONNX file on CPU (where the pack has one), float on "
                        "GPU; int8: the int8 file wherever there is one; float: always the float file")
    p.add_argument("--require-all", action="store_true", help="fail unless all four architectures exist")
    p.add_argument("--batch-delay-us", type=int, default=500,
                   help="dynamic batcher's longest wait for a fuller batch, microseconds")
    p.add_argument("--threads", type=int, default=1,
                   help="embedded flavour only: runtime threads per model instance")
    args = p.parse_args(argv)
    try:
        models = build_repository(args.models, args.out, args.flavour, max_batch=args.max_batch,
                                  instances=args.instances, kind=args.kind, runtime=args.runtime,
                                  require_all=args.require_all, batch_delay_us=args.batch_delay_us,
                                  threads=args.threads, precision=args.precision)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ferlite triton-repo: error: {exc}", file=sys.stderr)
        return 2
    for m in models:
        print(f"{m.architecture:<20} v{m.version}  {m.input_size}px -> {Path(args.out) / m.architecture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
