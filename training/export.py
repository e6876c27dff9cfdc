"""`ferlite export`: the serving artefacts of a trained model, each checked against Keras.

Per architecture, `OUT/<architecture>/` receives:

    model.keras            the Keras model (source of truth)
    saved_model/           TensorFlow SavedModel (serving signature: image -> probs)
    model.onnx             ONNX via tf2onnx (Keras' own ONNX export breaks on EfficientNetB0)
    model_fp32.tflite      TFLite float32
    model_int8.tflite      TFLite with int8 weights and activations (float input/output)
    metadata.json          label order, input size and normalisation, version, checks, and the
                           reference class distribution + confidence histogram on the validation
                           split (what the aggregator's drift metrics compare against)
    model_card.md          data, split, metrics, per-class recall, known limits

Every export is run on the test split: the max absolute difference from the Keras outputs and its
own accuracy are recorded, so a broken conversion cannot ship silently.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ferlite import __version__
from ferlite.labels import EMOTIONS

from . import preprocess
from .datasets import ImageSet
from .metrics import reference_profile
from .train import predict

FORMATS = ("savedmodel", "onnx", "tflite", "tflite_int8")
ONNX_OPSET = 17
NORMALISATION = ("RGB, float32 in [0, 1] (x / 255 after face crop and resize); NHWC; the model "
                 "adapts [0, 1] to its backbone's range internally")


def _run_batches(fn: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    out = [fn(preprocess.normalize(pixels[i:i + batch])) for i in range(0, len(pixels), batch)]
    return np.concatenate(out)


def _onnx(model: keras.Model, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort
    import tf2onnx

    size = model.input_shape[1]
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET)
    path.write_bytes(proto.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _tflite(model: keras.Model, path: Path, representative: np.ndarray | None
            ) -> Callable[[np.ndarray], np.ndarray]:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def samples():
            for image in representative:
                yield [preprocess.normalize(image[None])]

        converter.representative_dataset = samples
    path.write_bytes(converter.convert())
    interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=2)
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]

    def run(x: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(inp, list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out).copy()

    return run


def _savedmodel(model: keras.Model, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    if path.exists():
        shutil.rmtree(path)
    model.export(str(path), format="tf_saved_model", verbose=False)
    loaded = tf.saved_model.load(str(path))
    return lambda x: loaded.serve(tf.constant(x)).numpy()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f.read_bytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def export_model(model: keras.Model, out_dir: Path, val_set: ImageSet, test_set: ImageSet, *,
                 formats: tuple[str, ...] = FORMATS, version: int = 1, run_info: dict | None = None,
                 evaluation: dict | None = None) -> dict:
    """Write every requested format into out_dir/<architecture>/ and return the metadata."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    target = out_dir / model.name
    target.mkdir(parents=True, exist_ok=True)
    model.save(target / "model.keras")
    reference = predict(model, test_set.pixels, desc="keras/test")
    y_true = test_set.labels
    keras_accuracy = float((reference.argmax(1) == y_true).mean())
    checks: dict[str, dict] = {"keras": {"file": "model.keras", "accuracy": keras_accuracy, "max_abs_diff": 0.0}}
    builders: dict[str, tuple[str, Callable[[Path], Callable[[np.ndarray], np.ndarray]]]] = {
        "savedmodel": ("saved_model", lambda p: _savedmodel(model, p)),
        "onnx": ("model.onnx", lambda p: _onnx(model, p)),
        "tflite": ("model_fp32.tflite", lambda p: _tflite(model, p, None)),
        "tflite_int8": ("model_int8.tflite", lambda p: _tflite(model, p, val_set.pixels[:200])),
    }
    for fmt in formats:
        name, build = builders[fmt]
        start = time.perf_counter()
        run = build(target / name)
        probs = _run_batches(run, test_set.pixels)
        checks[fmt] = {
            "file": name,
            "accuracy": float((probs.argmax(1) == y_true).mean()),
            "max_abs_diff": float(np.abs(probs - reference).max()),
            "agreement": float((probs.argmax(1) == reference.argmax(1)).mean()),
            "bytes": _size(target / name),
            "sha256": _sha256(target / name),
            "export_seconds": round(time.perf_counter() - start, 2),
        }
    val_probs = predict(model, val_set.pixels, desc="keras/val")
    metadata = {
        "architecture": model.name,
        "version": version,
        "ferlite_version": __version__,
        "labels": list(EMOTIONS),
        "input": {"name": "image", "shape": [None, model.input_shape[1], model.input_shape[2], 3],
                  "dtype": "float32", "layout": "NHWC", "color": "RGB", "range": [0.0, 1.0],
                  "size": int(model.input_shape[1])},
        "output": {"name": "probs", "shape": [None, len(EMOTIONS)], "dtype": "float32"},
        "normalisation": NORMALISATION,
        "reference": reference_profile(val_probs),
        "checks": checks,
        "evaluation": {k: v for k, v in (evaluation or {}).items()
                       if k not in {"confusion", "confusion_normalised"}},
        "run": run_info or {},
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (target / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (target / "model_card.md").write_text(model_card(metadata))
    return metadata


def model_card(meta: dict) -> str:
    ev = meta.get("evaluation") or {}
    run = meta.get("run") or {}
    lines = [
        f"# Model card: {meta['architecture']} v{meta['version']}",
        "",
        "Facial-expression classifier for ferlite: seven classes "
        f"({', '.join(meta['labels'])}) from one aligned face crop.",
        "",
        "## Input",
        f"- {meta['input']['size']}×{meta['input']['size']} face crop; {meta['normalisation']}.",
        "",
        "## Data and split",
        f"- Training data: `{run.get('data', 'unknown')}`; test data: `{run.get('test_data') or 'held-out split'}`.",
        f"- Split: {run.get('split', 'unknown')}; seed {run.get('seed', '?')}. Subjects and byte-identical "
        "images never straddle splits. The test split was used once, for this report.",
        f"- Images: {json.dumps(run.get('counts', {}))}",
        "",
        "## Metrics (test split)",
    ]
    if ev:
        lines += [
            f"- accuracy {ev.get('accuracy', 0):.4f}, loss {ev.get('loss', 0):.4f}, macro precision "
            f"{ev.get('precision_macro', 0):.4f}, recall {ev.get('recall_macro', 0):.4f}, "
            f"F1 {ev.get('f1_macro', 0):.4f}, ECE {ev.get('ece', 0):.4f} (n={ev.get('n')})",
            "- per-class recall: " + ", ".join(f"{k} {v['recall']:.2f} (n={v['support']})"
                                               for k, v in ev.get("per_class", {}).items()),
        ]
    else:
        lines.append("- not evaluated")
    lines += ["", "## Exports (checked on the test split)", "",
              "| format | file | accuracy | max abs diff vs Keras | bytes |", "|---|---|---|---|---|"]
    for fmt, c in meta["checks"].items():
        lines.append(f"| {fmt} | {c['file']} | {c['accuracy']:.4f} | {c['max_abs_diff']:.2e} | {c.get('bytes', '')} |")
    lines += [
        "",
        "## Known limits",
        "- Trained on posed or web-scraped expressions; spontaneous classroom expressions, children's "
        "faces, occlusion (hands, masks), strong head pose and low light are under-represented.",
        "- Expression is not emotion: a label is a signal for a teacher's attention, never a "
        "judgement about a student. Low-confidence results are marked uncertain by the pipeline.",
        "- Accuracy differs across datasets and demographics; check per-class recall before use.",
        "",
    ]
    return "\n".join(lines)
