"""`ModelMetadata`: what every component needs to know about one exported model, in one type.

Written by `ferlite export` (and the model pack's builder) as `<model folder>/metadata.json`, read
by the classifier (input size, calibration, abstention, test-time flips, quality gate), the
Triton repository builder, the aggregator (drift reference), the local stack and the demo. Only
this module reads or writes that file, so the format has one definition. No TensorFlow import:
serving nodes read it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ferlite.base.architectures import check_architecture
from ferlite.base.labels import EMOTIONS

FILENAME = "metadata.json"
# The model pack shipped in the repository (trained on FER2013; see modelpack/README.md).
PACK_DIR = Path(__file__).resolve().parents[4] / "modelpack"  # services/common/ferlite/base/ -> the repository
# Which ONNX file serves: "auto" is the int8 file on CPUs where the pack validated one (within 0.5 pt
# of float on validation, `ferlite.training.pack.add_int8`), float on GPUs; "int8" the same on any
# device; "float" always the float file.
PRECISIONS = ("auto", "int8", "float")
NORMALISATION = ("RGB, float32 in [0, 1] (x / 255 after face crop and resize); NHWC; the model "
                 "adapts [0, 1] to its backbone's range internally")


class MetadataError(ValueError):
    """metadata.json is missing, unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class ModelMetadata:
    architecture: str
    input_size: int
    version: int = 1
    labels: tuple[str, ...] = EMOTIONS
    normalisation: str = NORMALISATION
    # Drift reference on the validation split: class_distribution, mean_confidence, histogram.
    reference: dict = field(default_factory=dict)
    # Calibration (fitted on validation): probabilities are softmax(log p / temperature).
    temperature: float = 1.0
    # A face whose calibrated confidence is below this is reported uncertain (0: never).
    abstain_below: float = 0.0
    # Average the prediction with the mirrored face (chosen on validation).
    flip_tta: bool = False
    # The colour the model learnt from (preprocess.COLOURS): "grey" makes the classifier give it
    # grey crops (preprocess.match_colour), so a FER2013 model never sees colour it was not trained
    # on. Older metadata without the field meant "rgb": crops as the camera sees them.
    colour: str = "rgb"
    # Figures: validation (accuracy, coverage, selective accuracy, ...), test, cross-dataset.
    validation: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)
    cross_dataset: dict = field(default_factory=dict)
    # Where the weights came from: dataset, licence, recipe, budget; `synthetic` for demo models.
    training: dict = field(default_factory=dict)
    synthetic: bool = False
    files: dict = field(default_factory=dict)      # format -> file name in the model folder
    # Another file of this model whose outputs differ from the float model's (the int8 ONNX file):
    # file name -> its own {"temperature", "abstain_below", "reference", ...}, fitted on the same
    # validation split. `for_file` applies them; the top-level fields are the float model's.
    file_calibration: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)     # format -> accuracy / max diff vs Keras
    extra: dict = field(default_factory=dict)      # anything else (export time, versions)

    def __post_init__(self) -> None:
        check_architecture(self.architecture)
        if tuple(self.labels) != EMOTIONS:
            raise MetadataError(f"{self.architecture}: label order {list(self.labels)} differs from the canonical "
                                f"{list(EMOTIONS)}")
        if not isinstance(self.input_size, int) or self.input_size < 16:
            raise MetadataError(f"{self.architecture}: input size {self.input_size!r} is not a size")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise MetadataError(f"{self.architecture}: temperature must be > 0, got {self.temperature}")
        if self.colour not in ("rgb", "grey"):
            raise MetadataError(f"{self.architecture}: colour must be rgb or grey, got {self.colour!r}")
        if not 0.0 <= self.abstain_below <= 1.0:
            raise MetadataError(f"{self.architecture}: abstain_below must be in [0, 1], got {self.abstain_below}")
        for name, own in self.file_calibration.items():
            t, a = own.get("temperature"), own.get("abstain_below")
            if not (isinstance(t, (int, float)) and t > 0 and math.isfinite(t)
                    and isinstance(a, (int, float)) and 0.0 <= a <= 1.0):
                raise MetadataError(f"{self.architecture}: file_calibration[{name!r}] needs a temperature > 0 and "
                                    f"abstain_below in [0, 1], got {own}")

    @property
    def val_accuracy(self) -> float | None:
        value = self.validation.get("accuracy")
        return None if value is None else float(value)

    def calibrate(self, probs: np.ndarray) -> np.ndarray:
        """Temperature-scaled probabilities (rows sum to 1); identity when temperature is 1."""
        return apply_temperature(probs, self.temperature)

    def for_file(self, name: str) -> ModelMetadata:
        """This metadata as it applies when `name` is the file served: that file's own temperature,
        abstention threshold and drift reference where it has them (file_calibration), else this."""
        own = self.file_calibration.get(name)
        if not own:
            return self
        return replace(self, temperature=float(own["temperature"]), abstain_below=float(own["abstain_below"]),
                       reference=own.get("reference", self.reference))

    def onnx_file(self, precision: str = "auto", gpu: bool = False) -> str:
        """The ONNX file name to serve in this model's folder at `precision` (see PRECISIONS)."""
        if precision not in PRECISIONS:
            raise MetadataError(f"precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        int8 = self.files.get("onnx_int8")
        if int8 and (precision == "int8" or (precision == "auto" and not gpu)):
            return int8
        return self.files.get("onnx", "model.onnx")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["labels"] = list(self.labels)
        data["input"] = {"name": "image", "shape": [None, self.input_size, self.input_size, 3], "dtype": "float32",
                         "layout": "NHWC", "color": "RGB", "range": [0.0, 1.0], "size": self.input_size}
        data["output"] = {"name": "probs", "shape": [None, len(EMOTIONS)], "dtype": "float32"}
        del data["input_size"]
        return data

    def save(self, folder: Path) -> Path:
        path = Path(folder) / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict) -> ModelMetadata:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "input_size" not in values:
            values["input_size"] = int(data["input"]["size"])
        values["labels"] = tuple(values.get("labels", EMOTIONS))
        return cls(**values)

    @classmethod
    def load(cls, folder: Path) -> ModelMetadata:
        path = Path(folder) / FILENAME
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise MetadataError(f"{path} is missing: export the model with `ferlite export`") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MetadataError(f"{path}: {exc}") from exc


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) row-wise, in float64 then back to the input's float type."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    out = np.exp(logits)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.asarray(probs).dtype)


def find_models(model_dir: Path) -> list[ModelMetadata]:
    """Every exported model under `model_dir` (one folder per architecture), registry order."""
    from ferlite.base.architectures import ARCHITECTURES

    root = Path(model_dir)
    return [ModelMetadata.load(root / a) for a in ARCHITECTURES if (root / a / FILENAME).exists()]
