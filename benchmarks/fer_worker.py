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


def time_frames(detector, frames, repeats):
    timings, faces = [], []
    for _ in range(repeats):
        for f in frames:
            t0 = time.perf_counter()
            found = detector.detect_emotions(f)
            timings.append((time.perf_counter() - t0) * 1000)
            faces.append(len(found))
    return timings, faces


def accuracy_of(detector, labelled):
    # Two ways to give fer a labelled face. "crop": the way its own pipeline hands a found face to its
    # classifier (grey, resized to its 64x64 input, scaled to [-1, 1]); the labelled images are
    # already face crops, so this is the fair one. "padded": detect_emotions with the whole image as
    # the face box, which adds fer's 10-px offsets as black borders (unfair on 48-px crops; kept
    # only to show the difference).
    accuracy, padded = {}, {}
    for name, items in labelled.items():
        correct = correct_padded = 0
        for item in items:
            gray = cv2.imread(item["path"], cv2.IMREAD_GRAYSCALE)
            face = cv2.resize(gray, (64, 64)).astype("float32") / 255.0
            scores = detector._classify_emotions(((face - 0.5) * 2.0)[None])[0]
            correct += LABELS[int(scores.argmax())] == item["label"]
            img = cv2.imread(item["path"])
            h, w = img.shape[:2]
            result = detector.detect_emotions(img, face_rectangles=[(0, 0, w, h)])
            if result:
                emotions = result[0]["emotions"]
                correct_padded += max(emotions, key=emotions.get) == item["label"]
        n = len(items)
        accuracy[name] = {"n": n, "accuracy": correct / n if n else None}
        padded[name] = {"n": n, "accuracy": correct_padded / n if n else None}
    return accuracy, padded


def serve(detector) -> None:
    """One JSON command per line on stdin, one JSON answer per line on stdout: {"frames": [paths],
    "repeats": n} times a block of frames (the caller interleaves these blocks with its own rows);
    {"labelled": {...}} scores the labelled faces; {"quit": true} ends."""
    loaded = {}
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("quit"):
            break
        if "labelled" in job:
            accuracy, padded = accuracy_of(detector, job["labelled"])
            answer = {"accuracy": accuracy, "accuracy_padded": padded}
        else:
            key = tuple(job["frames"])
            if key not in loaded:
                loaded[key] = [cv2.imread(p) for p in job["frames"]]
                time_frames(detector, loaded[key][:3], 1)  # warm-up
            timings, faces = time_frames(detector, loaded[key], job["repeats"])
            answer = {"timings_ms": timings, "faces_per_frame": faces[: len(loaded[key])]}
        print(json.dumps(answer), flush=True)


def main() -> None:
    detector = FER(mtcnn=False, use_tflite=True)
    if sys.argv[1] == "--serve":
        serve(detector)
        return
    with open(sys.argv[1]) as fh:
        job = json.load(fh)
    frames = [cv2.imread(p) for p in job["frames"]]
    time_frames(detector, frames[:3], 1)
    timings, faces = time_frames(detector, frames, job["repeats"])
    accuracy, padded = accuracy_of(detector, job["labelled"])
    print(json.dumps({"p50_ms": statistics.median(timings), "mean_ms": statistics.fmean(timings),
                      "frames": len(timings), "faces_per_frame": faces[: len(frames)], "accuracy": accuracy,
                      "accuracy_padded": padded}))


if __name__ == "__main__":
    main()
