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
