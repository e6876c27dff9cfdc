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
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ferlite.base import __version__, preprocess
from ferlite.base.model_metadata import ModelMetadata, apply_temperature

from .calibration import choose_threshold, fit_temperature
from .datasets import ImageSet
from .metrics import accuracy, expected_calibration_error, reference_profile
from .train import predict

FORMATS = ("savedmodel", "onnx", "tflite", "tflite_fp16", "tflite_int8")
DEFAULT_FORMATS = ("savedmodel", "onnx", "tflite", "tflite_int8")
ONNX_OPSET = 17


def run_batches(fn: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """`fn` (float [0, 1] batches in, probabilities out) over uint8 faces, normalised batch by batch."""
    out = [fn(preprocess.normalize(pixels[i:i + batch])) for i in range(0, len(pixels), batch)]
    return np.concatenate(out)


def _onnx(model: keras.Model, path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tf2onnx

    size = model.input_shape[1]
    spec = (tf.TensorSpec((None, size, size, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET)
    path.write_bytes(proto.SerializeToString())
    return onnx_runner(path)


def onnx_runner(path: Path, threads: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """An exported ONNX file as a function of float [0, 1] NHWC batches (ONNX Runtime, CPU)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _tflite(model: keras.Model, path: Path, representative: np.ndarray | None, fp16: bool = False
            ) -> Callable[[np.ndarray], np.ndarray]:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if fp16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def samples():
            for image in representative:
                yield [preprocess.normalize(image[None])]

        converter.representative_dataset = samples
    path.write_bytes(converter.convert())
    return tflite_runner(path)


def tflite_runner(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """An exported TFLite file as a function of float [0, 1] NHWC batches."""
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
                 formats: tuple[str, ...] = DEFAULT_FORMATS, version: int = 1, run_info: dict | None = None,
                 evaluation: dict | None = None, keep_keras: bool = True, flip_tta: bool = False,
                 training: dict | None = None, synthetic: bool = False) -> ModelMetadata:
    """Write every requested format into out_dir/<architecture>/ and return the metadata.

    Calibration (temperature) and the abstention threshold are fitted here on the validation
    split, so every exported model carries them."""
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    target = out_dir / model.name
    target.mkdir(parents=True, exist_ok=True)
    if keep_keras:
        model.save(target / "model.keras")
    reference = predict(model, test_set.pixels, desc="keras/test")
    y_true = test_set.labels
    keras_accuracy = accuracy(reference, y_true)
    checks: dict[str, dict] = {"keras": {"file": "model.keras" if keep_keras else "", "accuracy": keras_accuracy,
                                         "max_abs_diff": 0.0}}
    builders: dict[str, tuple[str, Callable[[Path], Callable[[np.ndarray], np.ndarray]]]] = {
        "savedmodel": ("saved_model", lambda p: _savedmodel(model, p)),
        "onnx": ("model.onnx", lambda p: _onnx(model, p)),
        "tflite": ("model_fp32.tflite", lambda p: _tflite(model, p, None)),
        "tflite_fp16": ("model_fp16.tflite", lambda p: _tflite(model, p, None, fp16=True)),
        "tflite_int8": ("model_int8.tflite", lambda p: _tflite(model, p, val_set.pixels[:200])),
    }
    files = {}
    for fmt in formats:
        name, build = builders[fmt]
        start = time.perf_counter()
        run = build(target / name)
        probs = run_batches(run, test_set.pixels)
        files[fmt] = name
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
    if flip_tta:
        val_probs = (val_probs + predict(model, val_set.pixels[:, :, ::-1], desc="keras/val-flip")) / 2
    temperature = fit_temperature(val_probs, val_set.labels)
    calibrated = apply_temperature(val_probs, temperature)
    abstention = choose_threshold(calibrated, val_set.labels)
    validation = {"accuracy": float((val_probs.argmax(1) == val_set.labels).mean()), "n": len(val_set.labels),
                  "ece_before": expected_calibration_error(val_probs, val_set.labels),
                  "ece": expected_calibration_error(calibrated, val_set.labels), **abstention.as_dict()}
    metadata = ModelMetadata(
        architecture=model.name, input_size=int(model.input_shape[1]), version=version,
        reference=reference_profile(calibrated), temperature=temperature, abstain_below=abstention.threshold,
        flip_tta=flip_tta, validation=validation,
        # Grey training faces (FER2013) make a grey model: the classifier then serves it grey crops.
        colour=preprocess.colour_of(val_set.pixels),
        test={k: v for k, v in (evaluation or {}).items() if k not in {"confusion_normalised"}},
        training=training or dict(run_info or {}), synthetic=synthetic, files=files, checks=checks,
        extra={"ferlite_version": __version__,
               "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    metadata.save(target)
    (target / "model_card.md").write_text(model_card(metadata))
    return metadata


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _int8_lines(meta: ModelMetadata) -> list[str]:
    """What the classifier serves on CPUs: the int8 file when the pack kept one (checks.onnx_int8)."""
    c = meta.checks.get("onnx_int8")
    if not c:
        return []
    val = (f"validation accuracy {_pct(c['val_accuracy_int8'])} vs {_pct(c['val_accuracy_float'])} in float, "
           f"{_pct(c['val_agreement'])} of labels the same")
    lat = c.get("latency_ms", {})
    speed = "; ".join(f"batch {b[5:]} {lat['float'][b]:.2f} -> {lat['int8'][b]:.2f} ms" for b in lat.get("int8", {}))
    if "onnx_int8" not in meta.files:
        why = c.get("rejected", "lost more than 0.5 pt")
        return [f"- No int8 file: quantised, it {why} ({val}" + (f"; ONNX Runtime, 2 threads: {speed}" if speed else "")
                + "); the float `model.onnx` serves."]
    lines = [f"- Served on CPUs as `{c['file']}` (int8, `precision` auto; float `model.onnx` with precision "
             f"float): {val}; test accuracy {_pct(c['accuracy'])} vs {_pct(c['accuracy_float'])} in float, "
             f"CK+48 {_pct(c['ck48_accuracy'])}; ONNX Runtime, 2 threads: {speed}."]
    own = meta.file_calibration.get(c["file"])
    if own:
        lines.append(f"- The int8 file has its own calibration, fitted on the same validation split: temperature "
                     f"{own['temperature']:.3f}, uncertain below {own['abstain_below']:.2f} (coverage "
                     f"{_pct(own['coverage'])}, selective accuracy {_pct(own['selective_accuracy'])}); ECE "
                     f"{own['ece']:.3f} (with the float model's temperature {own['ece_with_float_temperature']:.3f}).")
    return lines


def model_card(meta: ModelMetadata) -> str:
    ev, run, val = meta.test, meta.training, meta.validation
    lines = [
        f"# Model card: {meta.architecture} v{meta.version}",
        "",
        "Facial-expression classifier for ferlite: seven classes "
        f"({', '.join(meta.labels)}) from one aligned face crop.",
        "",
        "## Input",
        f"- {meta.input_size}×{meta.input_size} face crop; {meta.normalisation}.",
        *(["- Learnt from grey faces: the classifier serves it grey crops (each pixel's luma on all three "
           "channels, `preprocess.match_colour`)."] if meta.colour == "grey" else []),
        f"- Served with calibration temperature {meta.temperature:.3f}"
        f"{', averaged with the mirrored face' if meta.flip_tta else ''}; faces below confidence "
        f"{meta.abstain_below:.2f} are reported uncertain.",
        *_int8_lines(meta),
        "",
        "## Training data and licence",
    ]
    lines += [f"- {k}: {v}" for k, v in run.items() if not isinstance(v, dict | list)] or ["- unknown"]
    if meta.synthetic:
        lines.append("- **Demo model trained on synthetic cartoon faces: its labels for real faces mean nothing.**")
    lines += ["", "## Validation (model selection, calibration, threshold)",
              f"- accuracy {_pct(val.get('accuracy'))} (n={val.get('n')}); ECE {val.get('ece_before', 0):.3f} "
              f"before and {val.get('ece', 0):.3f} after temperature scaling",
              f"- at threshold {meta.abstain_below:.2f}: coverage {_pct(val.get('coverage'))}, selective "
              f"accuracy {_pct(val.get('selective_accuracy'))}", "", "## Test (computed once)"]
    if ev:
        lines += [
            f"- accuracy {_pct(ev.get('accuracy'))}, macro F1 {ev.get('f1_macro', 0):.3f}, macro recall "
            f"{ev.get('recall_macro', 0):.3f}, loss {ev.get('loss', 0):.3f}, ECE {ev.get('ece', 0):.3f} "
            f"(n={ev.get('n')})",
            "- per-class recall: " + ", ".join(f"{k} {v['recall']:.2f} (n={v['support']})"
                                               for k, v in ev.get("per_class", {}).items()),
        ]
        if "coverage" in ev:
            lines.append(f"- at the validation threshold: coverage {_pct(ev['coverage'])}, selective accuracy "
                         f"{_pct(ev['selective_accuracy'])}")
        if "paper_classes" in ev:
            five = ev["paper_classes"]
            lines.append(f"- on the paper's five classes ({', '.join(five['classes'])}; the faces of those classes, "
                         f"the most probable of the five): accuracy {_pct(five['accuracy'])}, macro precision "
                         f"{five['precision_macro']:.3f}, recall {five['recall_macro']:.3f}, F1 {five['f1_macro']:.3f} "
                         f"(n={five['n']})")
        if "confusion" in ev:
            lines += ["", "Confusion matrix (rows true, columns predicted):", "",
                      "| | " + " | ".join(meta.labels) + " |", "|---" * (len(meta.labels) + 1) + "|"]
            lines += [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
                      for name, row in zip(meta.labels, ev["confusion"], strict=True)]
        if "latency_ms" in ev:
            lat = ev["latency_ms"]
            runs = lat.items() if isinstance(lat, dict) else [("", lat)]
            lines.append("\n- latency (median, ms): " + "; ".join(
                f"{name} " + (", ".join(f"{k} {v:.2f}" for k, v in val.items()) if isinstance(val, dict) else f"{val}")
                for name, val in runs))
    else:
        lines.append("- not evaluated")
    for name, cd in meta.cross_dataset.items():
        lines += ["", f"## Cross-dataset: {name} (never trained on)",
                  f"- accuracy {_pct(cd.get('accuracy'))}, macro F1 {cd.get('f1_macro', 0):.3f} (n={cd.get('n')}); "
                  + ", ".join(f"{k} {v['recall']:.2f}" for k, v in cd.get("per_class", {}).items()
                              if v.get("support"))]
    lines += ["", "## Exports (checked on the test split)", "",
              "| format | file | accuracy | max abs diff vs Keras | bytes |", "|---|---|---|---|---|"]
    for fmt, c in meta.checks.items():
        if "accuracy" in c:  # a rejected int8 file has no test figures (see the Input section)
            lines.append(f"| {fmt} | {c['file']} | {c['accuracy']:.4f} | {c['max_abs_diff']:.2e} | "
                         f"{c.get('bytes', '')} |")
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
