"""A small synthetic facial-expression dataset that a CNN can learn, made from nothing.

Tests, CI and the offline demo cannot rely on real face data, so this draws cartoon faces whose
expression is carried by the same cues people read (mouth curve and opening, brow angle, eye
size), with random position, scale, tilt, brightness and noise. File names carry a subject
prefix (`S007_...`) so group-aware splitting is exercised too. Real accuracy is measured on real
data by the benchmarks, never on this.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from ferlite.base.cli import HelpFormatter
from ferlite.base.labels import EMOTIONS

# Per class: mouth curve (+ smile, - frown), mouth opening, brow tilt (+ inner end down = angry),
# brow lift, eye size.
_CUES = {
    "angry":    dict(curve=-0.2, open=0.0, tilt=0.5, lift=-0.05, eye=0.8),
    "disgust":  dict(curve=-0.5, open=0.15, tilt=0.25, lift=-0.1, eye=0.6),
    "fear":     dict(curve=-0.1, open=0.45, tilt=-0.4, lift=0.15, eye=1.4),
    "happy":    dict(curve=0.9, open=0.1, tilt=0.0, lift=0.0, eye=0.9),
    "sad":      dict(curve=-0.9, open=0.0, tilt=-0.5, lift=0.05, eye=0.9),
    "surprise": dict(curve=0.0, open=0.9, tilt=0.0, lift=0.3, eye=1.5),
    "neutral":  dict(curve=0.0, open=0.0, tilt=0.0, lift=0.0, eye=1.0),
}


def draw_face(label: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One greyscale uint8 size×size cartoon face showing `label`."""
    cue = _CUES[label]
    s = 8  # draw at 8× and shrink: smooth anti-aliased strokes
    big = size * s
    bg = int(rng.integers(20, 90))
    img = np.full((big, big), bg, np.uint8)
    cx = big / 2 + rng.normal(0, big * 0.03)
    cy = big / 2 + rng.normal(0, big * 0.03)
    r = big * rng.uniform(0.36, 0.44)
    skin = int(rng.integers(150, 230))
    ink = int(rng.integers(10, 60))
    cv2.ellipse(img, (int(cx), int(cy)), (int(r * 0.85), int(r)), 0, 0, 360, skin, -1, cv2.LINE_AA)

    def pt(dx: float, dy: float) -> tuple[int, int]:
        return int(cx + dx * r), int(cy + dy * r)

    thick = max(2, int(r * 0.06))
    eye = cue["eye"] * rng.uniform(0.85, 1.15)
    for side in (-1, 1):
        cv2.ellipse(img, pt(side * 0.35, -0.2), (int(r * 0.11 * eye), int(r * 0.08 * eye)), 0, 0, 360,
                    ink, -1, cv2.LINE_AA)
        lift = cue["lift"] + rng.normal(0, 0.02)
        tilt = cue["tilt"] * rng.uniform(0.8, 1.2)
        inner = pt(side * 0.12, -0.42 - lift + tilt * 0.12)
        outer = pt(side * 0.55, -0.42 - lift - tilt * 0.12)
        cv2.line(img, inner, outer, ink, thick, cv2.LINE_AA)
    curve = cue["curve"] * rng.uniform(0.8, 1.2)
    width = 0.38 * rng.uniform(0.9, 1.1)
    xs = np.linspace(-width, width, 24)
    ys = 0.42 + curve * 0.12 * (1 - (xs / width) ** 2)
    opening = cue["open"] * rng.uniform(0.8, 1.2)
    upper = np.array([pt(x, y) for x, y in zip(xs, ys, strict=True)], np.int32)
    if opening > 0.05:
        lower = np.array([pt(x, y + opening * 0.3 * (1 - (x / width) ** 2)) for x, y in
                          zip(xs[::-1], ys[::-1], strict=True)], np.int32)
        cv2.fillPoly(img, [np.concatenate([upper, lower])], ink, cv2.LINE_AA)
    else:
        cv2.polylines(img, [upper], False, ink, thick, cv2.LINE_AA)
    angle = rng.normal(0, 6)
    rot = cv2.getRotationMatrix2D((big / 2, big / 2), angle, 1.0)
    img = cv2.warpAffine(img, rot, (big, big), borderValue=bg)
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    small = small * rng.uniform(0.7, 1.2) + rng.normal(0, 6, small.shape)
    return np.clip(small, 0, 255).astype(np.uint8)


def make_dataset(out: str | Path, per_class: int = 40, size: int = 64, subjects: int = 10,
                 seed: int = 0, classes: tuple[str, ...] = EMOTIONS) -> Path:
    """Write `per_class` PNGs per class into out/<class>/S<subject>_<n>.png; return `out`."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    for label in classes:
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            subject = n % subjects
            cv2.imwrite(str(folder / f"S{subject:03d}_{label}_{n:04d}.png"), draw_face(label, rng, size))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="ferlite synth", description="Write a synthetic folder-per-class expression dataset "
        "(cartoon faces) for tests, CI and offline demos. Not a substitute for real data.")
    parser.add_argument("out", help="output folder (created)")
    parser.add_argument("--per-class", type=int, default=60, help="images per class")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--subjects", type=int, default=10, help="distinct subject prefixes")
    parser.add_argument("--seed", type=int, default=0, help="random seed (the same seed writes the same images)")
    args = parser.parse_args(argv)
    if args.per_class < 1 or args.size < 16 or args.subjects < 1:
        parser.error("--per-class and --subjects must be >= 1 and --size >= 16")
    path = make_dataset(args.out, args.per_class, args.size, args.subjects, args.seed)
    print(f"wrote {args.per_class * len(EMOTIONS)} images to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
