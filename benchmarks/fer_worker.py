"""Runs INSIDE the peer's own virtual environment (`fer` pulls its own TensorFlow): times the PyPI
package `fer` on frames and scores its expression model on labelled face images.

Input: a JSON job file path. Output: JSON on stdout. Imports nothing from ferlite.
"""

import json
import statistics
import sys
import time

import cv2
from fer.fer import FER

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def main() -> None:
    with open(sys.argv[1]) as fh:
        job = json.load(fh)
    detector = FER(mtcnn=False, use_tflite=True)
    frames = [cv2.imread(p) for p in job["frames"]]
    for f in frames[:3]:
        detector.detect_emotions(f)
    timings, faces = [], []
    for _ in range(job["repeats"]):
        for f in frames:
            t0 = time.perf_counter()
            found = detector.detect_emotions(f)
            timings.append((time.perf_counter() - t0) * 1000)
            faces.append(len(found))
    accuracy = {}
    for name, items in job["labelled"].items():
        correct = total = 0
        for item in items:
            img = cv2.imread(item["path"])
            h, w = img.shape[:2]
            result = detector.detect_emotions(img, face_rectangles=[(0, 0, w, h)])
            if result:
                emotions = result[0]["emotions"]
                correct += max(emotions, key=emotions.get) == item["label"]
            total += 1
        accuracy[name] = {"n": total, "accuracy": correct / total if total else None}
    print(json.dumps({"p50_ms": statistics.median(timings), "mean_ms": statistics.fmean(timings),
                      "frames": len(timings), "faces_per_frame": faces[: len(frames)], "accuracy": accuracy}))


if __name__ == "__main__":
    main()
