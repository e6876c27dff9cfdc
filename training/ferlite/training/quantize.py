"""Static int8 quantisation of a pack model's ONNX file, for serving on CPUs.

Why: on a CPU with VNNI (most x86 servers since 2019, and this project's 2-core machine) ONNX
Runtime runs a quantised MobileNetV2 at 128 px about 2.4x faster than float (14 faces: 11.8 ->
4.9 ms), the largest single cost of a frame through the stack. The int8 file is served only where
it keeps the float model's validation accuracy (see `ferlite.training.pack.add_int8`).

Recipe: QDQ format, weights int8 per channel, activations uint8 with MinMax ranges from
calibration faces of the TRAINING split (never validation or test) fed exactly as the classifier
feeds them: [0, 1] floats with the mirrored faces in the same batch when the model flips.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ferlite.base import preprocess

INT8_FILE = "model_int8.onnx"
CALIBRATION_FACES = 400
CALIBRATION_BATCH = 20


def calibration_faces(pixels: np.ndarray, n: int = CALIBRATION_FACES, seed: int = 0) -> np.ndarray:
    """A seeded random subset of (training) faces, uint8 N x S x S x 3."""
    rng = np.random.default_rng(seed)
    return pixels[np.sort(rng.choice(len(pixels), min(n, len(pixels)), replace=False))]


def quantize_onnx(source: Path, target: Path, faces: np.ndarray, flip: bool) -> dict:
    """Write `target`: `source` quantised with ranges observed on `faces` (uint8, model size).

    `source` may store its weights as float16 behind Cast nodes (the pack's storage): the
    pre-processing step folds those casts, so every Conv weight is an initializer again."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if faces.dtype != np.uint8 or faces.ndim != 4:
        raise ValueError(f"calibration faces must be uint8 N x S x S x 3, got {faces.dtype} {faces.shape}")

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            batches = (faces[i:i + CALIBRATION_BATCH] for i in range(0, len(faces), CALIBRATION_BATCH))
            self._batches = iter(batches)

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            if batch is None:
                return None
            if flip:
                batch = np.concatenate([batch, preprocess.mirrored(batch)])
            return {"image": preprocess.normalize(batch)}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(target), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax)
    return {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8, MinMax",
            "calibration_faces": len(faces), "bytes": target.stat().st_size}
