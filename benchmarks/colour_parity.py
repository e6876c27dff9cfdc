#!/usr/bin/env python3
"""Colour parity: the pack's models learnt from grey FER2013 faces; serve them colour or grey crops?

Each shipped model, as served (ONNX, flip averaging and temperature from its metadata), scores the
same faces two ways: the crop as the camera sees it (RGB), and `preprocess.match_colour(..., "grey")`
(each pixel's luma on three channels, what the classifier now does for a model whose metadata says
colour "grey"). Two sets of faces:

  tinted validation  the FER2013 validation faces (labelled, never used for training) given a skin
                     tone: each grey face times an RGB tone scaled to keep its luma, for six tones
                     from light to dark. Real face structure and labels, synthetic colour: a proxy
                     for colour cameras, so it is reported beside the grey validation figure.
  colour photographs real colour faces found by the face-detection service's detector and cropped by
                     the shared preprocessing: scikit-image's astronaut (NASA, public domain; she
                     smiles: happy), matplotlib's grace_hopper (US Navy, public domain; no label),
                     and the insightface group photo when the package registry is reachable (rights
                     with its owner: read at run time, never stored; no labels). Without labels, the
                     figure is how often the two paths agree and how confident each is.

Usage: python benchmarks/colour_parity.py --data .pack/fer2013.npz [--pack modelpack]
Writes benchmarks/results/colour.{md,json}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import write_results  # noqa: E402
from ferlite.base import preprocess  # noqa: E402
from ferlite.base.labels import EMOTIONS  # noqa: E402
from ferlite.base.model_metadata import find_models  # noqa: E402
from ferlite.training.export import onnx_runner  # noqa: E402
from ferlite.training.metrics import accuracy  # noqa: E402
from ferlite.training.pack import on_faces, served  # noqa: E402

# Skin tones from light to dark (sRGB), the six-step palette often used to illustrate the Fitzpatrick
# scale; each is scaled to luma 1 so that a tinted face keeps its grey values as its luma.
TONES = {"I": (255, 224, 196), "II": (234, 192, 160), "III": (214, 161, 122), "IV": (176, 120, 84),
         "V": (128, 84, 56), "VI": (86, 58, 42)}
LUMA = np.array([0.299, 0.587, 0.114])


def tinted(grey48: np.ndarray, tone: tuple[int, int, int], size: int) -> np.ndarray:
    """Grey faces given a skin tone (luma kept where no channel clips), resized as served."""
    scale = np.array(tone, np.float64) / float(np.dot(tone, LUMA))
    rgb = np.clip(grey48[..., None].astype(np.float64) * scale, 0, 255).astype(np.uint8)
    return np.stack([preprocess.face_pixels(face, size) for face in rgb])


def photo_crops(size: int) -> dict[str, np.ndarray]:
    """name -> uint8 RGB crops of every face the service's detector finds in each colour photograph."""
    from ferlite.app.photos import PhotoUnavailable, group_photo
    from ferlite.services.facedetect.config import FaceDetectConfig
    from ferlite.services.facedetect.detectors import make_detector

    images: dict[str, np.ndarray] = {}
    from skimage import data

    images["astronaut"] = data.astronaut()
    import matplotlib

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if hopper.exists():
        images["grace_hopper"] = cv2.cvtColor(cv2.imread(str(hopper)), cv2.COLOR_BGR2RGB)
    try:
        images["group"] = cv2.cvtColor(group_photo(ROOT / "var" / "photos"), cv2.COLOR_BGR2RGB)
    except PhotoUnavailable as exc:
        print(f"(group photo skipped: {exc})", file=sys.stderr)
    c = FaceDetectConfig()  # the service's defaults: its detector, threshold and crop margin
    detector = make_detector(c.detector, c.blazeface_model, c.score_threshold, c.nms_iou, c.min_face_px, c.max_faces)
    crops = {}
    for name, rgb in images.items():
        faces = detector.detect(rgb)
        cut = [preprocess.face_pixels(rgb, size, preprocess.Box(*f.box), c.crop_margin, f.eyes) for f in faces]
        crops[name] = np.stack(cut) if cut else np.zeros((0, size, size, 3), np.uint8)
    return crops


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / ".pack" / "fer2013.npz",
                   help="train_pack.py prepare's decoded file (its validation split is used)")
    p.add_argument("--pack", type=Path, default=ROOT / "modelpack")
    p.add_argument("--limit", type=int, default=0, help="first N validation faces (a smoke test)")
    args = p.parse_args()
    if not args.data.exists():
        p.error(f"{args.data} not found: run `python benchmarks/train_pack.py prepare` first")
    data = dict(np.load(args.data))
    x_val, y_val = data["x_val"], data["y_val"]
    if args.limit:
        x_val, y_val = x_val[:args.limit], y_val[:args.limit]
    rows, photo_rows = [], []
    for meta in find_models(args.pack):
        run = on_faces(onnx_runner(args.pack / meta.architecture / meta.files["onnx"]))
        size = meta.input_size
        grey = tinted(x_val, (1, 1, 1), size)
        base = accuracy(served(run, grey, meta), y_val)
        row = {"architecture": meta.architecture, "colour": meta.colour, "grey_val": base, "tones": {}}
        for name, tone in TONES.items():
            faces = tinted(x_val, tone, size)
            as_rgb = served(run, faces, meta)
            as_grey = served(run, preprocess.match_colour(faces, "grey"), meta)
            row["tones"][name] = {"rgb": accuracy(as_rgb, y_val), "grey": accuracy(as_grey, y_val),
                                  "agreement": float((as_rgb.argmax(1) == as_grey.argmax(1)).mean())}
        row["rgb_mean"] = float(np.mean([t["rgb"] for t in row["tones"].values()]))
        row["grey_mean"] = float(np.mean([t["grey"] for t in row["tones"].values()]))
        rows.append(row)
        print(f"{meta.architecture}: grey val {base:.4f}; tinted: served RGB {row['rgb_mean']:.4f}, "
              f"served grey {row['grey_mean']:.4f}", flush=True)
        for name, crops in photo_crops(size).items():
            if not len(crops):
                continue
            as_rgb, as_grey = served(run, crops, meta), served(run, preprocess.match_colour(crops, "grey"), meta)
            photo_rows.append({"architecture": meta.architecture, "photo": name, "faces": len(crops),
                               "rgb": [EMOTIONS[k] for k in as_rgb.argmax(1)],
                               "grey": [EMOTIONS[k] for k in as_grey.argmax(1)],
                               "rgb_confidence": float(as_rgb.max(1).mean()),
                               "grey_confidence": float(as_grey.max(1).mean()),
                               "agreement": float((as_rgb.argmax(1) == as_grey.argmax(1)).mean())})
    lines = ["# Colour parity: grey-trained models served colour or grey crops", "",
             "Generated by `benchmarks/colour_parity.py`. The pack's models learnt from grey FER2013 faces (metadata "
             "`colour: grey`). Each is scored as served on the same faces given as RGB crops and as grey crops "
             "(`preprocess.match_colour`).", "",
             f"## Tinted validation (FER2013 validation, n={len(y_val)}, six skin tones, luma kept)", "",
             "| model | grey validation | served RGB (mean of tones) | served grey (mean of tones) "
             "| worst tone RGB / grey |",
             "|---|---|---|---|---|"]
    for r in rows:
        worst = min(r["tones"], key=lambda t: r["tones"][t]["rgb"])
        lines.append(f"| {r['architecture']} | {r['grey_val']:.4f} | {r['rgb_mean']:.4f} | {r['grey_mean']:.4f} | "
                     f"{worst}: {r['tones'][worst]['rgb']:.4f} / {r['tones'][worst]['grey']:.4f} |")
    lines += ["", "Per tone (served RGB / served grey / agreement):", "",
              "| model | " + " | ".join(TONES) + " |", "|---" * (len(TONES) + 1) + "|"]
    for r in rows:
        lines.append(f"| {r['architecture']} | " + " | ".join(
            f"{t['rgb']:.3f} / {t['grey']:.3f} / {t['agreement']:.2f}" for t in r["tones"].values()) + " |")
    lines += ["", "## Colour photographs (no labels but the astronaut's smile)", "",
              "| model | photo | faces | labels served RGB | labels served grey | agreement "
              "| mean confidence RGB / grey |",
              "|---|---|---|---|---|---|---|"]
    for r in photo_rows:
        lines.append(f"| {r['architecture']} | {r['photo']} | {r['faces']} | {', '.join(r['rgb'])} | "
                     f"{', '.join(r['grey'])} | {r['agreement']:.2f} | {r['rgb_confidence']:.2f} / "
                     f"{r['grey_confidence']:.2f} |")
    lines += ["", "Tones: the six-step light-to-dark palette commonly used to illustrate the Fitzpatrick scale "
              "(sRGB I (255,224,196) ... VI (86,58,42)), scaled to keep each face's luma; bright pixels clip. "
              "A proxy for colour cameras, not a measurement of them.", ""]
    write_results("colour", {"tinted_validation": rows, "photos": photo_rows}, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
