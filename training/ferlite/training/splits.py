"""Leak-free, stratified, seeded 70/15/15 splits, and the manifest that records them.

Images that share a subject (CK+ `Sxxx`) or identical bytes (FER2013 has hundreds of byte
duplicates) are joined into one unit by union-find, and whole units are assigned to splits, so
no subject and no duplicate image ever sits on both sides. Units are stratified by label: for
each class, shuffled units go to whichever split is furthest below its target share.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ferlite.base.labels import EMOTIONS

from .datasets import ImageSet, Sample

SPLITS = ("train", "val", "test")


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def units(samples: Sequence[Sample]) -> list[list[int]]:
    """Indices grouped so that a shared subject or a shared digest means the same unit."""
    uf = _UnionFind(len(samples))
    first: dict[str, int] = {}
    for i, s in enumerate(samples):
        for key in (f"g:{s.group}" if s.group else None, f"d:{s.digest}"):
            if key is None:
                continue
            if key in first:
                uf.union(first[key], i)
            else:
                first[key] = i
    grouped: dict[int, list[int]] = {}
    for i in range(len(samples)):
        grouped.setdefault(uf.find(i), []).append(i)
    return list(grouped.values())


def split_indices(samples: Sequence[Sample], fractions: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 42) -> dict[str, np.ndarray]:
    """Assign every sample to train/val/test (or train/val with two fractions)."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.min() < 0 or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {list(fractions)}")
    names = SPLITS[: len(fractions)]
    rng = np.random.default_rng(seed)
    by_label: dict[int, list[list[int]]] = {}
    for unit in units(samples):
        labels = [samples[i].label for i in unit]
        majority = max(set(labels), key=labels.count)
        by_label.setdefault(majority, []).append(unit)
    assigned: dict[str, list[int]] = {n: [] for n in names}
    for label in sorted(by_label):
        groups = by_label[label]
        order = rng.permutation(len(groups))
        counts = np.zeros(len(names))
        for k in order:
            unit = groups[k]
            # The split with the largest shortfall against its target takes the unit.
            shortfall = fractions * (counts.sum() + len(unit)) - counts
            choice = int(np.argmax(shortfall))
            assigned[names[choice]].extend(unit)
            counts[choice] += len(unit)
    return {n: np.array(sorted(v), dtype=np.int64) for n, v in assigned.items()}


def exclude_duplicates(test: ImageSet, reference: ImageSet) -> tuple[ImageSet, int]:
    """Drop test images whose bytes also occur in `reference` (e.g. FER2013 PublicTest vs train)."""
    seen = {s.digest for s in reference.samples}
    keep = np.array([i for i, s in enumerate(test.samples) if s.digest not in seen], dtype=np.int64)
    return test.subset(keep), len(test.samples) - len(keep)


def write_manifest(path: Path, data: dict[str, ImageSet], meta: dict) -> None:
    """Record which file went where, with class counts, so a split can be audited and reused."""
    payload = {
        **meta,
        "labels": list(EMOTIONS),
        "counts": {name: subset.class_counts() for name, subset in data.items()},
        "splits": {name: [{"source": s.source, "label": EMOTIONS[s.label], "group": s.group,
                           "sha1": s.digest} for s in subset.samples]
                   for name, subset in data.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))
