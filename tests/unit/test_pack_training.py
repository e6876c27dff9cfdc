"""The pack trainer's helpers: smoke subsets that mean something, the teacher chosen on validation."""

from __future__ import annotations

import numpy as np

from ferlite.training.distill import choose_ensemble
from ferlite.training.pack import smoke_subset


def test_a_smoke_subset_draws_every_class_not_the_first_rows() -> None:
    """Splits are stored class by class: the first 300 rows are one class, a drawn 300 are all seven."""
    labels = np.repeat(np.arange(7), 400).astype(np.uint8)
    data = {"x_train": np.arange(len(labels))[:, None], "y_train": labels,
            "x_val": np.arange(70)[:, None], "y_val": np.repeat(np.arange(7), 10).astype(np.uint8)}
    small = smoke_subset(data, 300)
    assert len(small["y_train"]) == 300 and set(small["y_train"].tolist()) == set(range(7))
    rows = small["rows_train"]
    assert np.array_equal(small["x_train"][:, 0], rows) and np.all(np.diff(rows) > 0)  # aligned, in order
    assert np.array_equal(small["y_train"], labels[rows])
    assert len(small["y_val"]) == 70  # a split smaller than the limit stays whole
    assert np.array_equal(smoke_subset(data, 300)["rows_train"], rows)  # seeded


def test_the_teacher_is_the_ensemble_validation_prefers() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 600)

    def model(right: np.ndarray) -> np.ndarray:
        """Confident on the faces `right` marks, uniform noise elsewhere."""
        probs = rng.dirichlet(np.ones(7), len(labels))
        probs[right] = 0.02
        probs[right, labels[right]] = 0.88
        return probs

    halves = np.arange(len(labels)) < 300
    a, b = model(halves), model(~halves)  # each right on a different half: together right on both
    weak = model(np.zeros(len(labels), bool))
    best, scores = choose_ensemble({"a": a, "b": b, "weak": weak}, labels)
    assert best == ("a", "b")
    assert scores[("a", "b")] > max(scores[("a",)], scores[("b",)]) > scores[("weak",)]
    assert len(scores) == 7  # every non-empty subset of three
    alone, _ = choose_ensemble({"a": a, "copy": a.copy()}, labels)
    assert alone == ("a",)  # a tie goes to fewer models


def test_the_pack_record_rebuilds_the_jobs_of_an_older_file(tmp_path) -> None:
    """An older benchmarks/results/pack.json kept only rows (served figures) and the recipe: the jobs
    are rebuilt with the training run's validation figure (the variant picked), not the served one."""
    import json

    from ferlite.training.pack import pack_record, replaced_lines

    row = {"architecture": "mobilenet_v2", "size": 128, "init": "imagenet", "distilled": False, "epochs": 61,
           "best_epoch": 21, "train_seconds": 540.0, "val_accuracy": 0.664}
    recipe = {"batch_size": 128, "selection": {"mobilenet_v2": [{"run": "a", "val_accuracy": 0.6626},
                                                                {"run": "b", "val_accuracy": 0.6398}]}}
    old = tmp_path / "pack.json"
    old.write_text(json.dumps({"rows": [row], "recipe": recipe}))
    record = pack_record(old)
    job = record["jobs"]["mobilenet_v2"]
    assert job["val_accuracy"] == 0.6626 and job["seconds"] == 540.0 and record["batch_size"] == 128
    assert replaced_lines(record) == []
    job["replaced"] = {"old_val_accuracy": 0.664, "new_val_accuracy": 0.671, "how": "on a CPU"}
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"rows": [row], "recipe": record}))
    assert pack_record(new) == record  # a newer file keeps the jobs as they were
    assert replaced_lines(record) == ["- MobileNetV2 was retrained later and replaced the run's model because its "
                                      "validation accuracy was higher (0.664 -> 0.671): on a CPU."]
