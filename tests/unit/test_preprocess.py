"""The shared preprocessing: geometry, normalisation, decoding, and no train/serve skew."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ferlite.base import preprocess
from ferlite.base.preprocess import Box


def test_greyscale_and_rgba_become_rgb() -> None:
    grey = np.arange(16, dtype=np.uint8).reshape(4, 4)
    rgb = preprocess.to_rgb(grey)
    assert rgb.shape == (4, 4, 3)
    assert (rgb[..., 0] == grey).all() and (rgb[..., 2] == grey).all()
    rgba = np.dstack([rgb, np.full((4, 4), 7, np.uint8)])
    assert (preprocess.to_rgb(rgba) == rgb).all()
    with pytest.raises(ValueError, match="uint8"):
        preprocess.to_rgb(grey.astype(np.float32))


def test_square_crop_is_centred_and_pads_at_edges() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255
    crop = preprocess.square_crop(image, Box(40, 40, 20, 20), margin=0.5)
    assert crop.shape == (40, 40, 3)
    assert crop[20, 20].tolist() == [255, 255, 255]
    corner = preprocess.square_crop(image, Box(-10, -10, 30, 30), margin=0.0)
    assert corner.shape == (30, 30, 3)  # replicated border, not a smaller crop


def test_normalize_is_exactly_x_over_255() -> None:
    values = np.arange(256, dtype=np.uint8)
    out = preprocess.normalize(values)
    assert out.dtype == np.float32
    assert out[0] == 0.0 and out[255] == 1.0
    assert np.array_equal(out, values.astype(np.float32) / np.float32(255))
    into = np.full(256, np.nan, np.float32)
    assert preprocess.normalize(values, out=into) is into and np.array_equal(into, out)


def test_prepare_face_shape_range_and_size_check() -> None:
    image = np.random.default_rng(0).integers(0, 256, (120, 90, 3), dtype=np.uint8)
    face = preprocess.prepare_face(image, size=48, box=Box(20, 30, 40, 50))
    assert face.shape == (48, 48, 3) and face.dtype == np.float32
    assert face.min() >= 0.0 and face.max() <= 1.0
    with pytest.raises(ValueError, match=">= 32"):
        preprocess.prepare_face(image, size=16)


def test_decode_rejects_garbage_and_keeps_rgb_order() -> None:
    with pytest.raises(ValueError, match="empty"):
        preprocess.decode_image(b"")
    with pytest.raises(ValueError, match="not a decodable image"):
        preprocess.decode_image(b"\x89PNG\r\n\x1a\n this is not a png")
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 2] = 255  # BGR red
    ok, png = cv2.imencode(".png", red)
    assert ok
    assert preprocess.decode_image(png.tobytes())[0, 0].tolist() == [255, 0, 0]


def test_training_tensor_pipeline_equals_serving_normalisation() -> None:
    """tf.data's normalisation (training) must equal NumPy's (serving) bit for bit."""
    from ferlite.training.train import to_unit_float

    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(to_unit_float(values).numpy(), preprocess.normalize(values))


def test_training_loader_and_serving_path_give_identical_tensors(tmp_path) -> None:
    """The same face file through the dataset loader (training) and decode→prepare (serving)."""
    from skimage import data

    from ferlite.training.datasets import load_folder
    from ferlite.training.train import to_unit_float

    folder = tmp_path / "happy"
    folder.mkdir()
    face = cv2.cvtColor(data.astronaut()[30:230, 150:330], cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "astronaut.png"), face)
    cv2.imwrite(str(folder / "astronaut.jpg"), face)
    loaded = load_folder(tmp_path, 64, progress=False)
    for sample, pixels in zip(loaded.samples, loaded.pixels, strict=True):
        serving = preprocess.prepare_face(preprocess.decode_image(Path(sample.source).read_bytes()), 64)
        training = to_unit_float(pixels[None]).numpy()[0]
        assert np.array_equal(training, serving)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_mirrored_flips_each_image_of_a_batch_left_right(dtype) -> None:
    batch = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3)).astype(dtype)
    np.testing.assert_array_equal(preprocess.mirrored(batch), batch[:, :, ::-1])
    np.testing.assert_array_equal(preprocess.mirrored(batch[:1, :, :, :1]), batch[:1, :, ::-1, :1])
    halves = np.zeros((6, 5, 7, 3), dtype)  # into the second half of a buffer, as the Triton model does
    assert preprocess.mirrored(batch, out=halves[3:]).base is halves
    np.testing.assert_array_equal(halves[3:], batch[:, :, ::-1])
    assert not halves[:3].any()
    with pytest.raises(ValueError, match="C-contiguous"):
        preprocess.mirrored(batch, out=halves[:, :, :, :1])


def test_match_colour_gives_grey_models_the_luma_on_three_channels() -> None:
    from ferlite.base.preprocess import is_grey, match_colour

    rgb = np.random.default_rng(0).integers(0, 256, (3, 20, 20, 3)).astype(np.uint8)
    assert match_colour(rgb, "rgb") is rgb
    grey = match_colour(rgb, "grey")
    assert grey.shape == rgb.shape and grey.dtype == np.uint8 and is_grey(grey) and not is_grey(rgb)
    one = cv2.cvtColor(rgb[1], cv2.COLOR_RGB2GRAY)  # the same as converting each crop alone
    assert np.array_equal(grey[1, ..., 0], one)
    assert np.array_equal(match_colour(grey, "grey"), grey)  # grey faces (FER2013) are left as they are
    with pytest.raises(ValueError, match="colour"):
        match_colour(rgb, "sepia")


def _reference_aligned_crop(image: np.ndarray, box: Box, margin: float, eyes) -> np.ndarray:
    """The crop by its definition: pad the whole frame, cut a square sqrt(2) larger, rotate it
    about its centre so the eyes are level, take the centre (what aligned_square_crop computes in
    one warp)."""
    import math

    (lx, ly), (rx, ry) = eyes
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    side = max(1, round(max(box.width, box.height) * (1.0 + 2.0 * margin)))
    big = math.ceil(side * math.sqrt(2)) + 2
    cx, cy = box.x + box.width / 2.0, box.y + box.height / 2.0
    x0, y0 = round(cx - big / 2.0), round(cy - big / 2.0)
    pad = big + abs(x0) + abs(y0)
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, borderType=cv2.BORDER_REPLICATE)
    region = padded[y0 + pad:y0 + pad + big, x0 + pad:x0 + pad + big]
    matrix = cv2.getRotationMatrix2D((big / 2.0, big / 2.0), angle, 1.0)
    rotated = cv2.warpAffine(region, matrix, (big, big), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    off = (big - side) // 2
    return rotated[off:off + side, off:off + side]


def _smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    small = rng.integers(0, 256, (max(2, h // 8), max(2, w // 8), 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def test_square_crop_equals_the_padded_frame_everywhere() -> None:
    """Inside, across an edge, and wholly outside the frame: the pixels of a crop of the frame
    padded by replication (square_crop pads only its own window)."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(20, 200, 2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        side = float(rng.uniform(2, 1.5 * max(h, w)))
        box = Box(float(rng.uniform(-2 * side, w + side)), float(rng.uniform(-2 * side, h + side)), side, side)
        crop = preprocess.square_crop(image, box, margin=0.1)
        s = crop.shape[0]
        full_side = side * 1.2
        x0, y0 = round(box.x + side / 2 - full_side / 2), round(box.y + side / 2 - full_side / 2)
        pad = s + abs(x0) + abs(y0)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, borderType=cv2.BORDER_REPLICATE)
        assert np.array_equal(crop, padded[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]), box


def test_aligned_crop_is_the_rotated_larger_square() -> None:
    rng = np.random.default_rng(4)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(60, 400, 2))
        image = _smooth_image(rng, h, w)
        side = float(rng.uniform(20, 0.8 * max(h, w)))
        box = Box(float(rng.uniform(-side / 2, w - side / 2)), float(rng.uniform(-side / 2, h - side / 2)), side, side)
        tilt = float(rng.uniform(2, 55)) * (1 if rng.random() < 0.5 else -1)
        cx, cy, d = box.x + side / 2, box.y + side / 2, side / 4
        dx, dy = d * np.cos(np.radians(tilt)), d * np.sin(np.radians(tilt))
        eyes = ((cx - dx, cy - dy), (cx + dx, cy + dy))
        crop = preprocess.aligned_square_crop(image, box, 0.2, eyes)
        want = _reference_aligned_crop(image, box, 0.2, eyes)
        assert crop.shape == want.shape
        diff = np.abs(crop.astype(int) - want.astype(int))
        assert diff.max() <= 3 and diff.mean() < 0.05, (box, tilt, diff.max(), diff.mean())


def test_a_face_at_the_edge_does_not_copy_the_frame() -> None:
    """A face crossing the edge of a 12 MP frame: the crop allocates about its own size, not a
    padded copy of the 36 MB frame (each such face once did)."""
    import tracemalloc

    frame = np.zeros((3000, 4000, 3), np.uint8)
    box = Box(-30.0, 1400.0, 200.0, 200.0)
    tracemalloc.start()
    try:
        preprocess.face_pixels(frame, 128, box, 0.2)
        preprocess.face_pixels(frame, 128, box, 0.2, eyes=((20.0, 1480.0), (110.0, 1510.0)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20, f"cropping one face allocated {peak / 2**20:.1f} MiB"
