"""Splits: stratified 70/15/15, seeded, no subject and no duplicate on two sides."""

from __future__ import annotations

import numpy as np

from ferlite.training.datasets import ImageSet, Sample
from ferlite.training.splits import exclude_duplicates, split_indices


def _samples(n_per_class: int = 100, groups: int = 0, dup_every: int = 0) -> list[Sample]:
    out = []
    for label in range(7):
        for i in range(n_per_class):
            group = f"S{(label * 1000 + i) % groups:03d}" if groups else ""
            digest = f"d{label}-{i // 2}" if dup_every and i % dup_every < 2 else f"u{label}-{i}"
            out.append(Sample(f"{label}/{i}.png", label, group, digest))
    return out


def _where(split: dict[str, np.ndarray], n: int) -> np.ndarray:
    where = np.full(n, -1)
    for k, idx in enumerate(split.values()):
        assert (where[idx] == -1).all(), "a sample is in two splits"
        where[idx] = k
    assert (where >= 0).all(), "a sample is in no split"
    return where


def test_fractions_and_stratification() -> None:
    samples = _samples(100)
    split = split_indices(samples, seed=1)
    _where(split, len(samples))
    labels = np.array([s.label for s in samples])
    for name, frac in zip(("train", "val", "test"), (0.7, 0.15, 0.15), strict=True):
        per_class = np.bincount(labels[split[name]], minlength=7)
        assert np.all(np.abs(per_class - 100 * frac) <= 1), (name, per_class)


def test_seeded_and_seed_sensitive() -> None:
    samples = _samples(50)
    a, b, c = (split_indices(samples, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_subjects_never_straddle_splits() -> None:
    samples = _samples(60, groups=25)
    where = _where(split_indices(samples, seed=0), len(samples))
    by_group: dict[str, set[int]] = {}
    for s, w in zip(samples, where, strict=True):
        by_group.setdefault(s.group, set()).add(int(w))
    assert all(len(v) == 1 for v in by_group.values())
    assert len({int(w) for w in where}) == 3


def test_identical_images_never_straddle_splits() -> None:
    samples = _samples(60, dup_every=3)
    where = _where(split_indices(samples, seed=0), len(samples))
    by_digest: dict[str, set[int]] = {}
    for s, w in zip(samples, where, strict=True):
        by_digest.setdefault(s.digest, set()).add(int(w))
    assert any(len([s for s in samples if s.digest == d]) > 1 for d in by_digest)
    assert all(len(v) == 1 for v in by_digest.values())


def test_exclude_duplicates_against_training_set() -> None:
    pix = np.zeros((3, 4, 4, 3), np.uint8)
    train = ImageSet([Sample("a", 0, "", "x"), Sample("b", 1, "", "y"), Sample("c", 2, "", "z")], pix)
    test = ImageSet([Sample("t1", 0, "", "x"), Sample("t2", 1, "", "new"), Sample("t3", 2, "", "z")], pix)
    kept, removed = exclude_duplicates(test, train)
    assert removed == 2 and [s.source for s in kept.samples] == ["t2"]
