"""Frame headers read by a real parser: marker tricks never let a small file decode to a huge frame.

The hostile files come from `tests/support/image_tricks.py`. Each must be refused before the decoder
runs (too_large at the header) or, where only the decoder sees the problem, refused by it; a legal
frame of each kind still decodes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferlite.services.facedetect import frames
from ferlite.services.facedetect.frames import FrameError, decode_encoded, header_size
from tests.support.image_tricks import jpeg_bomb, png_bomb, webp_bomb

LIMIT_MP = 12.0


@pytest.fixture
def decoder_calls(monkeypatch) -> list[int]:
    """Counts calls of the real decoder: a bomb refused at its header never reaches it."""
    calls: list[int] = []
    real = frames._decode_8bit_rgb

    def spy(data: bytes) -> np.ndarray:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(frames, "_decode_8bit_rgb", spy)
    return calls


@pytest.mark.parametrize("trick", ["fill", "rst", "app", "progressive", "sofs_big_last"])
def test_jpeg_marker_tricks_are_read_at_their_real_size_and_refused(trick, decoder_calls) -> None:
    data = jpeg_bomb(trick)
    assert len(data) < 70_000  # a small file...
    assert header_size(data, "jpeg") == (20000, 20000)  # ...whose real frame is 400 MP
    with pytest.raises(FrameError) as err:
        decode_encoded(data, LIMIT_MP)
    assert err.value.reason == "too_large"
    assert decoder_calls == []


def test_two_frame_headers_are_refused_by_the_decoder_without_the_big_frame() -> None:
    # Big first, then 16x16: the parser reports the last; the decoder refuses a second SOF while
    # reading headers, before it allocates anything.
    with pytest.raises(FrameError) as err:
        decode_encoded(jpeg_bomb("two_sofs"), LIMIT_MP)
    assert err.value.reason == "undecodable"


@pytest.mark.parametrize(("make", "kind"), [(png_bomb, "png"), (webp_bomb, "webp")])
def test_png_and_webp_headers_claiming_huge_frames_are_refused(make, kind, decoder_calls) -> None:
    data = make()
    width, height = header_size(data, kind)
    assert width * height > 200e6
    with pytest.raises(FrameError, match="above the 12 MP limit"):
        decode_encoded(data, LIMIT_MP)
    assert decoder_calls == []


@pytest.mark.parametrize("cut", [3, 20, 40, 100])
def test_truncated_headers_are_corrupt_not_crashes(cut) -> None:
    _, jpeg = cv2.imencode(".jpg", np.full((40, 60, 3), 90, np.uint8))
    with pytest.raises(FrameError) as err:
        decode_encoded(jpeg.tobytes()[:cut], LIMIT_MP)
    assert err.value.reason in ("undecodable", "unsupported_format")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".webp"])
def test_legal_frames_still_decode_at_their_size(ext) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (40, 60, 3)).astype(np.uint8)
    _, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert header_size(encoded.tobytes(), ext.strip(".").replace("jpg", "jpeg")) == (60, 40)
    assert decode_encoded(encoded.tobytes(), LIMIT_MP).shape == (40, 60, 3)
    _, progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert decode_encoded(progressive.tobytes(), LIMIT_MP).shape == (40, 60, 3)


@pytest.mark.parametrize("ext", [".png", ".webp", ".jpg"])
def test_frames_decode_in_rgb_order(ext) -> None:
    """Red stays red: the decoder writes RGB itself (a BGR frame would swap the model's colours)."""
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 220  # red
    rgb[8:, :, 2] = 90  # some blue below
    params = [cv2.IMWRITE_WEBP_QUALITY, 101] if ext == ".webp" else []
    _, encoded = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    decoded = decode_encoded(encoded.tobytes(), LIMIT_MP).astype(int)
    for rows in (slice(0, 6), slice(10, 16)):  # each colour away from the edge JPEG blurs
        assert np.abs(decoded[rows].mean(axis=(0, 1)) - rgb[rows].mean(axis=(0, 1))).max() < 4
