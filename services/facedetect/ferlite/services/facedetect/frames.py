"""Frame decoding with bounded memory and precise errors.

Encoded frames are sniffed (JPEG, PNG, WebP) and their dimensions read from the header by a real
parser (Pillow's) BEFORE decoding, so a small file that would decode to a huge image is refused
without allocating it; a decoder that reads another size than that parser is refused too, and
OpenCV's own pixel ceiling (set in `ferlite/__init__.py`) bounds what any decoder may allocate.
Raw frames are checked against their declared size, format and stride.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import cv2
import numpy as np


class FrameError(ValueError):
    """The frame cannot be used; `reason` is a short label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


RAW_FORMATS = {  # name -> (bytes per pixel, OpenCV conversion to RGB or None)
    "gray8": (1, cv2.COLOR_GRAY2RGB),
    "rgb8": (3, None),
    "bgr8": (3, cv2.COLOR_BGR2RGB),
    "rgba8": (4, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, cv2.COLOR_BGRA2RGB),
}


# Row padding real cameras use is alignment (a few to 64 bytes); more is a malformed frame.
MAX_ROW_PADDING = 4096


@dataclass(frozen=True)
class RawFrame:
    width: int
    height: int
    format: str   # a RAW_FORMATS key, or "" when unspecified
    row_stride: int
    data: bytes


def sniff(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def header_size(data: bytes, kind: str) -> tuple[int, int] | None:
    """(width, height) from the file header, or None if it cannot be read.

    JPEG and PNG are read by Pillow's format parsers, which walk the markers as the decoders do
    (JPEG fill bytes, RST/APPn/COM before the frame header, progressive frames; PNG's IHDR) and read
    no pixel data. A hand-written marker scanner once skipped a fill byte wrongly, landed on a decoy
    16x16 frame header, and let a 49 KB file decode to 6 GB. WebP is read here from its first chunk,
    the fields libwebp's WebPGetFeatures reads and OpenCV allocates by (Pillow's WebP parser
    allocates the whole canvas to read the size). Pillow's own bomb check is not used: the caller
    applies the configured limit."""
    if kind == "webp":
        return _webp_size(data)
    from PIL import JpegImagePlugin, PngImagePlugin

    plugin = {"jpeg": JpegImagePlugin.JpegImageFile, "png": PngImagePlugin.PngImageFile}.get(kind)
    if plugin is None:
        return None
    try:
        with plugin(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # any parse failure (SyntaxError, OSError, struct.error...) means "corrupt"
        return None
    return int(width), int(height)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas size of a WebP file: VP8X's canvas, or the VP8/VP8L frame's size (RIFF, first chunk)."""
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _check_size(width: int, height: int, max_megapixels: float) -> None:
    if width <= 0 or height <= 0:
        raise FrameError("empty", f"frame has no pixels ({width}x{height})")
    mp = width * height / 1e6
    if mp > max_megapixels:
        raise FrameError("too_large", f"frame is {width}x{height} = {mp:.1f} MP, above the {max_megapixels:g} MP limit")


def decode_encoded(data: bytes, max_megapixels: float) -> np.ndarray:
    if not data:
        raise FrameError("empty", "frame is empty (0 bytes)")
    kind = sniff(data)
    if kind is None:
        raise FrameError("unsupported_format", "encoded frame is not JPEG, PNG or WebP (unrecognised header)")
    size = header_size(data, kind)
    if size is None:
        raise FrameError("undecodable", f"{kind.upper()} header is truncated or corrupt")
    _check_size(*size, max_megapixels)
    try:
        image = _decode_8bit_rgb(data)
    except ValueError:
        raise FrameError("undecodable", f"{kind.upper()} data could not be decoded (truncated or corrupt)") from None
    if (image.shape[1], image.shape[0]) != size:  # the decoder read another frame than the header parser
        raise FrameError("undecodable", f"{kind.upper()} header and data disagree on the frame size")
    return image


def _decode_8bit_rgb(data: bytes) -> np.ndarray:
    """Decode straight to 8-bit RGB: the decoder reduces 16-bit and drops alpha itself, so a small
    16-bit RGBA PNG never expands into a 16-bit (let alone float) image in memory, and it writes
    RGB order itself (OpenCV >= 4.10), with no BGR-to-RGB pass over the frame afterwards."""
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error:  # OpenCV's own pixel ceiling (ferlite.base.DECODER_MAX_PIXELS), or a decoder failure
        raise ValueError("undecodable") from None
    if image is None:
        raise ValueError("undecodable")
    return image


def decode_raw(raw: RawFrame, max_megapixels: float) -> np.ndarray:
    if raw.format not in RAW_FORMATS:
        raise FrameError("unsupported_format", f"raw pixel format {raw.format or 'unspecified'!r} is not supported; "
                         f"use one of {', '.join(f.upper() for f in RAW_FORMATS)}")
    _check_size(raw.width, raw.height, max_megapixels)
    bpp, conversion = RAW_FORMATS[raw.format]
    row = raw.width * bpp
    stride = raw.row_stride or row
    if stride < row:
        raise FrameError("bad_dimensions", f"row_stride {stride} is smaller than width x {bpp} bytes = {row}")
    if stride > row + MAX_ROW_PADDING:
        raise FrameError("bad_dimensions", f"row_stride {stride} pads each {row}-byte row by more than "
                         f"{MAX_ROW_PADDING} bytes")
    expected = raw.height * stride
    if len(raw.data) not in (expected, expected - (stride - row)):
        raise FrameError("bad_dimensions", f"raw frame has {len(raw.data)} bytes; {raw.width}x{raw.height} "
                         f"{raw.format.upper()} with stride {stride} needs {expected}")
    # A strided view of the caller's bytes: nothing is allocated before the (bounded) RGB copy.
    pixels = np.ndarray((raw.height, raw.width, bpp), np.uint8, buffer=raw.data, strides=(stride, bpp, 1))
    if conversion is None:
        return np.ascontiguousarray(pixels)
    return cv2.cvtColor(pixels[:, :, 0] if bpp == 1 else np.ascontiguousarray(pixels), conversion)
