#!/usr/bin/env python3
"""Benchmark against the peer a user would pick instead: the PyPI package `fer` (offline, its
bundled TFLite model and OpenCV Haar detector), on the same frames and the same labelled faces.

`fer` needs its own TensorFlow, so it lives in its own virtual environment
(benchmarks/results/tmp/fer-venv, made by --setup) and runs there as a subprocess
(benchmarks/fer_worker.py). Same run, same frames:
  * ferlite in-process: BlazeFace + the exported model on ONNX Runtime (the same work as fer);
  * ferlite through the whole stack: one gRPC Process call per frame (detect, classify on Triton,
    record in Redis), and the same frames on ProcessStream (recorded off the frame's path);
  * fer: FER.detect_emotions per frame.
Accuracy on the same images: the model pack's held-out faces (FER2013 PublicTest deduplicated
against train, and CK+48), from `benchmarks/train_pack.py prepare`'s file; fer gets each face as
its own pipeline would (grey, 64x64, [-1, 1]).
Aim: ferlite >= 5x faster per frame. Writes benchmarks/results/peer.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from ferlite.base.labels import EMOTIONS
from ferlite.base.model_metadata import PACK_DIR, ModelMetadata, find_models

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, percentiles, timed, write_results  # noqa: E402
from benchmarks.photos import FRAMES, photo_jpegs  # noqa: E402
from ferlite.app.sample_clip import sample_jpegs  # noqa: E402

VENV = RESULTS / "tmp" / "fer-venv"


# One session per benchmark run: event ids stay unique across runs (see facedetect.proto).
SESSION = secrets.token_hex(8)

def setup() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "tensorflow-cpu==2.21.*", "opencv-python-headless<5", "numpy<2", "Pillow", "requests",
                    "setuptools<81"], check=True)
    subprocess.run([*pip, "--no-deps", "fer==25.10.3"], check=True)  # skips facenet-pytorch/torch (MTCNN only)


def labelled_sets(data: Path, out: Path, limit: int) -> dict[str, list[dict]]:
    """The model pack's own held-out images (FER2013 PublicTest deduplicated against train, and all
    of CK+48), written as PNG files for fer: the same faces the pack's test figures come from."""
    import cv2

    sets = {}
    with np.load(data) as d:
        for name, x, y in (("fer2013_publictest", "x_test", "y_test"), ("ck48", "x_ck48", "y_ck48")):
            if x not in d:
                continue
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            items = []
            for i, (img, label) in enumerate(zip(d[x][:limit], d[y][:limit], strict=True)):
                path = folder / f"{i:05d}.png"
                cv2.imwrite(str(path), img)
                items.append({"path": str(path), "label": EMOTIONS[int(label)]})
            sets[name] = items
    return sets


def pack_accuracy(models: Path) -> dict[str, dict[str, dict]]:
    """Each served model's test figures from its metadata (computed once, on the same images): the
    int8 file's where the stack serves it (the classifier's default precision), else the float's."""
    out: dict[str, dict[str, dict]] = {}
    for meta in find_models(models):
        int8 = meta.checks.get("onnx_int8", {}) if "onnx_int8" in meta.files else {}
        out.setdefault("fer2013_publictest", {})[meta.architecture] = {
            "n": meta.test["n"], "accuracy": int8.get("accuracy", meta.test["accuracy"]), "int8": bool(int8)}
        ck = next(iter(meta.cross_dataset.values()), None) if meta.cross_dataset else None
        if ck:
            out.setdefault("ck48", {})[meta.architecture] = {
                "n": ck["n"], "accuracy": int8.get("ck48_accuracy", ck["accuracy"]), "int8": bool(int8)}
    return out


def ferlite_in_process(models: Path, jpegs: list[bytes], arch: str, repeats: int) -> dict:
    import onnxruntime as ort

    from ferlite.base import preprocess
    from ferlite.services.classifier.config import ClassifierConfig
    from ferlite.services.facedetect.detectors import make_detector

    meta = ModelMetadata.load(models / arch)
    size = meta.input_size
    # The file the stack's classifier serves at its default precision (int8 where the pack kept one).
    served = meta.onnx_file(ClassifierConfig().precision)
    session = ort.InferenceSession(str(models / arch / served), providers=["CPUExecutionProvider"])
    detector = make_detector("blazeface_full")
    images = [preprocess.decode_image(j) for j in jpegs]

    def one(rgb: np.ndarray) -> int:
        faces = detector.detect(rgb)
        if faces:
            crops = np.stack([preprocess.prepare_face(rgb, size, preprocess.Box(*f.box), 0.2, f.eyes) for f in faces])
            if meta.flip_tta:  # the served model's flip averaging: the same model work as the stack does
                crops = np.concatenate([crops, preprocess.mirrored(crops)])
            session.run(None, {"image": crops})
        return len(faces)

    for img in images[:3]:
        one(img)
    samples = [ms for _ in range(repeats) for img in images for ms in timed(lambda i=img: one(i), 1)]
    return {**percentiles(samples), "faces_per_frame": [one(i) for i in images], "file": served}


@contextmanager
def started_stack(models: Path, offset: int, arch: str, precision: str) -> Iterator[str]:
    """A local stack serving `arch` only (A/B policy) at the classifier's `precision`; yields the
    face-detection address."""
    from ferlite.app.stack import LocalStack, StackConfig

    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps({"weights": {arch: 1}, "sticky": False}))
        stack = LocalStack(StackConfig.with_port_offset(
            offset, model_dir=models, data_dir=Path(tmp), policy_file=str(policy),
            extra_env={"FERLITE_CLASSIFIER_PRECISION": precision})).start()
        try:
            yield f"127.0.0.1:{stack.config.facedetect_port}"
        finally:
            stack.stop()


def ferlite_through_stack(models: Path, jpegs: list[bytes], offset: int, arch: str,
                          repeats: int) -> dict[str, dict[str, dict]]:
    """The same frames through the local stack serving `arch` only (the in-process row's model), one
    call per frame (`Process`: the answer waits for the events to be stored) and on a stream
    (`ProcessStream`: recorded off the frame's path, acknowledged after), at the classifier's default
    precision (auto: the pack's int8 file) and with the float file. Both stacks run at once and
    every frame goes to each in turn, so a busy moment of this 2-core machine hits both alike."""
    from ferlite.app.client import CameraSession, CameraStream

    precisions = ("auto", "float")
    with ExitStack() as stack:
        targets = {p: stack.enter_context(started_stack(models, offset + 50 * i, arch, p))
                   for i, p in enumerate(precisions)}
        calls, streams = {}, {}
        for p, target in targets.items():
            calls[(p, "process")] = stack.enter_context(
                CameraSession(target, "peer", f"s-{p}", retries=0, session_id=SESSION)).process
            streams[p] = CameraStream(stack.enter_context(
                CameraSession(target, "peer", f"st-{p}", retries=0, session_id=SESSION)))
            calls[(p, "stream")] = streams[p].process
        for call in calls.values():
            for j in jpegs[:3]:
                call(j)
        samples: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
        for mode in ("process", "stream"):  # not mixed: a streamed frame is still being recorded after it
            for _ in range(repeats):
                for j in jpegs:
                    for p in precisions:
                        samples[(p, mode)].extend(timed(lambda c=calls[(p, mode)], j=j: c(j), 1))
        out: dict[str, dict[str, dict]] = {p: {} for p in precisions}
        for (p, mode), ms in samples.items():
            out[p][mode] = {**percentiles(ms), "frames": len(ms)}
        for p, streamed in streams.items():
            acknowledged = streamed.wait_acknowledged(30)
            out[p]["stream"].update(frames=streamed.session.index, stored=len(streamed.stored),
                                    all_acknowledged=acknowledged)
            streamed.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz",
                   help="the model pack's decoded splits (benchmarks/train_pack.py prepare)")
    p.add_argument("--arch", default="mobilenet_v2", help="the model in-process and through the stack "
                   "[mobilenet_v2: the pack's most accurate, and its slowest served arm]")
    p.add_argument("--limit", type=int, default=4000, help="most labelled images per set")
    p.add_argument("--setup", action="store_true", help="create the peer's virtual environment first")
    p.add_argument("--port-offset", type=int, default=3200)
    p.add_argument("--repeats", type=int, default=25, help="times each frame goes through each ferlite row "
                   "(fer's own row: 5; it is ~100 ms a frame and steadier)")
    p.add_argument("--frames", choices=["photos", "sample"], default="photos",
                   help="photos: real photographs from registry packages (benchmarks/photos.py: a six-person "
                        "group, two portraits); sample: the demo clip's frames")
    args = p.parse_args()
    if args.setup or not (VENV / "bin" / "python").exists():
        setup()
    jpegs = photo_jpegs() if args.frames == "photos" else sample_jpegs()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, j in enumerate(jpegs):
            path = Path(tmp) / f"frame{i:02d}.jpg"
            path.write_bytes(j)
            paths.append(str(path))
        job = Path(tmp) / "job.json"
        labelled = labelled_sets(args.data, Path(tmp) / "faces", args.limit)
        job.write_text(json.dumps({"frames": paths, "repeats": 5, "labelled": labelled}))
        worker = [str(VENV / "bin" / "python"), str(ROOT / "benchmarks" / "fer_worker.py"), str(job)]
        result = subprocess.run(worker, capture_output=True, text=True,
                                env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
        if result.returncode != 0:
            raise SystemExit(f"fer worker failed:\n{result.stderr[-3000:]}")
        peer = json.loads(result.stdout.strip().splitlines()[-1])
    local = ferlite_in_process(args.models, jpegs, args.arch, args.repeats)
    through = ferlite_through_stack(args.models, jpegs, args.port_offset, args.arch, args.repeats)
    stacked, streamed = through["auto"]["process"], through["auto"]["stream"]
    floated = through["float"]  # the same frames, same run: the int8 file's effect
    ours = pack_accuracy(args.models)
    # Means, not medians: half the frames are the six-face group and half one-face portraits, so the
    # median falls in the gap between the two kinds of frame and jumps with noise.
    speed_local = peer["mean_ms"] / local["mean_ms"]
    speed_stack = peer["mean_ms"] / stacked["mean_ms"]
    speed_stream = peer["mean_ms"] / streamed["mean_ms"]
    print(f"per frame mean: fer {peer['mean_ms']:.1f} ms; ferlite in-process {local['mean_ms']:.1f} ms "
          f"({speed_local:.1f}x faster); through the stack {stacked['mean_ms']:.1f} ms ({speed_stack:.1f}x), "
          f"streamed {streamed['mean_ms']:.1f} ms ({speed_stream:.1f}x; {streamed['stored']} of "
          f"{streamed['frames']} frames acknowledged stored)")
    lines = ["# Against the peer: the `fer` package", "",
             f"Same run, same frames: {FRAMES[args.frames]}; 2-core CPU. `fer` 25.10.3 with its bundled "
             "TFLite model and Haar detector, in its own venv.", "",
             "| system | mean ms/frame | p50 | p99 | fer / system (means) |", "|---|---|---|---|---|",
             f"| fer (FER.detect_emotions) | {peer['mean_ms']:.1f} | {peer['p50_ms']:.1f} | - | 1.0 |",
             f"| ferlite in-process (BlazeFace + {args.arch} `{local['file']}` on ONNX Runtime, its flip averaging) | "
             f"{local['mean_ms']:.1f} | {local['p50_ms']:.1f} | {local['p99_ms']:.1f} | {speed_local:.1f}x |",
             f"| ferlite through the stack, `Process` (gRPC, Triton, Redis; {args.arch}, the same file) | "
             f"{stacked['mean_ms']:.1f} | "
             f"{stacked['p50_ms']:.1f} | {stacked['p99_ms']:.1f} | {speed_stack:.1f}x |",
             f"| ferlite through the stack, `ProcessStream` (events recorded off the frame's path) | "
             f"{streamed['mean_ms']:.1f} | {streamed['p50_ms']:.1f} | {streamed['p99_ms']:.1f} | {speed_stream:.1f}x |",
             *[f"| the same stack serving the float `model.onnx` (precision float), `{k}` | {r['mean_ms']:.1f} | "
               f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {peer['mean_ms'] / r['mean_ms']:.1f}x |"
               for k, r in (("Process", floated["process"]), ("ProcessStream", floated["stream"]))],
             "", "Ratios of means: half the frames are the six-face group and half one-face portraits, so a median "
             "falls in the gap between the two kinds of frame.", "",
             f"Streamed frames acknowledged as stored by the end: {streamed['stored']} of {streamed['frames']} "
             f"(every one: {streamed['all_acknowledged']}). The stack serves {args.arch} only (A/B policy), the "
             "in-process row's model.", "",
             f"Faces found per frame: fer {peer['faces_per_frame']}, ferlite {local['faces_per_frame']}.", "",
             "Accuracy on the same labelled faces: the model pack's held-out images (FER2013 PublicTest "
             "deduplicated against train; CK+48, never trained on). ferlite's figures are the pack's test "
             "figures (metadata.json, computed once on these images; the int8 file's where the stack serves "
             "it). fer gets each face the way its own "
             "pipeline hands a found face to its classifier: grey, resized to 64x64, scaled to [-1, 1]. "
             "That is the fair way: the images are already face crops. Calling `detect_emotions` with the "
             "whole image as the box instead adds fer's 10-px offsets as black borders around a 48-px face "
             "(shown as 'fer, padded').", "",
             "| images | fer | fer, padded | " + " | ".join(["ferlite " + a for a in sorted({a for v in ours.values()
                                                                                           for a in v})]) + " |"]
    archs = sorted({a for v in ours.values() for a in v})
    lines.append("|---|---|---|" + "---|" * len(archs))
    for name, acc in peer["accuracy"].items():
        cells = [f"{ours.get(name, {}).get(a, {}).get('accuracy', float('nan')):.3f}"
                 + (" (int8)" if ours.get(name, {}).get(a, {}).get("int8") else "") for a in archs]
        padded = peer["accuracy_padded"][name]["accuracy"]
        lines.append(f"| {name} (n={acc['n']}) | {acc['accuracy']:.3f} | {padded:.3f} | " + " | ".join(cells) + " |")
    lines += [""]
    md = "\n".join(lines)
    write_results("peer", {"fer": peer, "ferlite_in_process": local, "ferlite_stack": stacked,
                           "ferlite_stream": streamed, "ferlite_float": floated, "ferlite_accuracy": ours,
                           "arch": args.arch,
                           "speedup_in_process": speed_local, "speedup_stack": speed_stack,
                           "speedup_stream": speed_stream}, md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
