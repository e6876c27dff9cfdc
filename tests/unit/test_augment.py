"""Host-side augmentation (the GPU path): the same four transforms as the Keras layers, bounded."""

from __future__ import annotations

import numpy as np

from ferlite.training.augment import AugmentConfig, augment_batch

NONE = AugmentConfig(rotation_degrees=0.0, flip=False, zoom=0.0, brightness=0.0)


def faces(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (n, 48, 48, 1), dtype=np.uint8)


def test_nothing_on_changes_nothing_and_keeps_the_shape() -> None:
    x = faces()
    out = augment_batch(x, np.random.default_rng(0), NONE)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.array_equal(out, x.astype(np.float32))
    assert augment_batch(x[..., 0], np.random.default_rng(0), NONE).shape == (64, 48, 48)


def test_flip_mirrors_about_half_the_faces_and_nothing_else() -> None:
    x = faces()
    out = augment_batch(x, np.random.default_rng(0), AugmentConfig(0.0, True, 0.0, 0.0))
    same = [np.array_equal(o, f) for o, f in zip(out, x.astype(np.float32), strict=True)]
    mirrored = [np.array_equal(o, f[:, ::-1]) for o, f in zip(out, x.astype(np.float32), strict=True)]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 16 < sum(mirrored) < 48


def test_rotation_and_zoom_move_pixels_but_repeat_edges() -> None:
    x = faces()
    geo = AugmentConfig(15.0, False, 0.1, 0.0)
    out = augment_batch(x, np.random.default_rng(0), geo)
    assert not np.array_equal(out, x.astype(np.float32))
    flat = np.full((4, 48, 48), 90, np.uint8)  # a flat face stays flat: no black corners
    assert np.allclose(augment_batch(flat, np.random.default_rng(1), geo), 90.0)


def test_brightness_shifts_each_face_by_one_bounded_amount_and_clips() -> None:
    x = np.full((200, 48, 48), 128, np.uint8)
    out = augment_batch(x, np.random.default_rng(0), AugmentConfig(0.0, False, 0.0, 0.2))
    shift = out[:, 0, 0] - 128.0
    assert np.allclose(out, out[:, :1, :1])  # one shift per face
    assert np.abs(shift).max() <= 0.2 * 255 + 1e-3 and shift.std() > 10
    bright = augment_batch(np.full((50, 48, 48), 250, np.uint8), np.random.default_rng(0), AugmentConfig(
        0.0, False, 0.0, 0.2))
    assert bright.max() <= 255.0 and bright.min() >= 250 - 0.2 * 255 - 1e-3


def test_a_seed_gives_the_same_batch() -> None:
    x = faces()
    a = augment_batch(x, np.random.default_rng(5))
    assert np.array_equal(a, augment_batch(x, np.random.default_rng(5)))
    assert not np.array_equal(a, augment_batch(x, np.random.default_rng(6)))


def test_shift_moves_faces_within_its_bound_and_is_off_by_default() -> None:
    dot = np.zeros((300, 48, 48), np.uint8)
    dot[:, 24, 24] = 255  # one bright pixel at the centre: where it lands is the shift
    moved = augment_batch(dot, np.random.default_rng(0), AugmentConfig(0.0, False, 0.0, 0.0, shift=0.1))
    peaks = np.array([np.unravel_index(np.argmax(m), m.shape) for m in moved]) - 24
    assert np.abs(peaks).max() <= 0.1 * 48 + 1 and (np.abs(peaks) >= 3).any()
    assert np.array_equal(augment_batch(dot, np.random.default_rng(0), NONE), dot.astype(np.float32))
    assert AugmentConfig().shift == 0.0


def test_cutout_puts_one_bounded_noise_rectangle_on_the_chosen_faces() -> None:
    flat = np.full((400, 48, 48), 128, np.uint8)
    config = AugmentConfig(0.0, False, 0.0, 0.0, cutout=0.5)
    out = augment_batch(flat, np.random.default_rng(0), config)
    changed = out != 128.0
    hit = changed.any(axis=(1, 2))
    assert 150 < hit.sum() < 250  # about half the faces
    for face in changed[hit]:
        rows, cols = np.flatnonzero(face.any(axis=1)), np.flatnonzero(face.any(axis=0))
        box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)  # one rectangle holds every changed pixel
        assert box <= 0.2 * 48 * 48 + 48 and rows[-1] - rows[0] + 1 == len(rows)
    assert out.min() >= 0.0 and out.max() <= 255.0
    assert np.array_equal(out, augment_batch(flat, np.random.default_rng(0), config))
    assert AugmentConfig().cutout == 0.0


def test_cutout_out_of_range_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="probability"):
        augment_batch(faces(), np.random.default_rng(0), AugmentConfig(cutout=1.5))
    with pytest.raises(ValueError, match="cutout_area"):
        augment_batch(faces(), np.random.default_rng(0), AugmentConfig(cutout=0.5, cutout_area=(0.3, 0.1)))


def test_the_keras_augmenter_erases_too() -> None:
    from ferlite.training.augment import augmenter

    flat = np.full((16, 48, 48, 1), 0.5, np.float32)
    layers = augmenter(AugmentConfig(0.0, False, 0.0, 0.0, cutout=1.0), seed=1)
    out = np.asarray(layers(flat, training=True))
    assert [layer.__class__.__name__ for layer in layers.layers] == ["RandomErasing"]
    assert (np.abs(out - 0.5) > 1e-6).any(axis=(1, 2, 3)).mean() > 0.5
