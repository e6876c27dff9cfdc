"""An interrupted training job continues where it stopped, not from the beginning."""

from __future__ import annotations

import keras
import numpy as np

from ferlite.training.checkpoint import EpochCheckpoint


def model_and_optimizer():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    # A schedule read from the optimizer's step count, as the pack trainer's fixed-epoch runs use.
    rate = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=40, warmup_target=5e-2, warmup_steps=10)
    optimizer = keras.optimizers.AdamW(rate, weight_decay=1e-4)
    model.compile(optimizer, keras.losses.MeanSquaredError())
    return model, optimizer


def test_two_epochs_with_a_restart_between_equal_two_without(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 8), dtype=np.float32), rng.random((64, 3), dtype=np.float32)
    straight, _ = model_and_optimizer()
    straight.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    first, optimizer = model_and_optimizer()
    first.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    saved = EpochCheckpoint(tmp_path / "job.last.npz", "dense:8:none")
    saved.save(first, optimizer, 1, {"history": [{"epoch": 1}]})

    again, optimizer = model_and_optimizer()  # a new process: fresh weights, fresh optimizer
    state = EpochCheckpoint(tmp_path / "job.last.npz", "dense:8:none").load(again, optimizer, again.trainable_variables)
    assert state["epoch"] == 1 and state["history"] == [{"epoch": 1}]
    assert int(optimizer.iterations) == 4
    again.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, shuffle=False, verbose=0)
    for a, b in zip(again.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_another_job_s_file_is_not_loaded(tmp_path) -> None:
    model, optimizer = model_and_optimizer()
    EpochCheckpoint(tmp_path / "job.last.npz", "dense:8:none").save(model, optimizer, 1, {})
    other, optimizer = model_and_optimizer()
    before = [w.copy() for w in other.get_weights()]
    assert EpochCheckpoint(tmp_path / "job.last.npz", "dense:8:pack").load(other, optimizer, []) is None
    assert all(np.array_equal(a, b) for a, b in zip(before, other.get_weights(), strict=True))
