"""Hostile encoded frames: small files whose header tricks a naive size reader (test material).

Each builder starts from a real 16x16 JPEG (or PNG/WebP) made by OpenCV and rewrites its header
bytes, so the decoders see legal structure around the trick.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _small_jpeg(progressive: bool = False) -> bytes:
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8), params)
    assert ok
    return jpeg.tobytes()


def _sof(jpeg: bytes) -> tuple[int, bytes]:
    """Offset and bytes of the frame header (SOF0 or SOF2) of `jpeg`."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        k = jpeg.find(marker)
        if k >= 0:
            n = int.from_bytes(jpeg[k + 2:k + 4], "big")
            return k, jpeg[k:k + 2 + n]
    raise ValueError("no SOF0/SOF2 in the JPEG")


def _resized(sof: bytes, width: int, height: int) -> bytes:
    out = bytearray(sof)
    out[5:7], out[7:9] = height.to_bytes(2, "big"), width.to_bytes(2, "big")
    return bytes(out)


def jpeg_bomb(trick: str, width: int = 20000, height: int = 20000) -> bytes:
    """A JPEG whose real frame header says width x height, preceded by `trick`, with a decoy 16x16
    frame header where a scanner that misreads the trick would jump (the attack of issue 25):

      fill     one 0xFF fill byte before the SOF (legal, JPEG B.1.1.2)
      rst      an RST0 marker (no length) before the SOF
      app      an APP15 and a COM segment before the SOF (legal)
      two_sofs the real header, then a second 16x16 one (illegal: decoders refuse two)
      sofs_big_last  a 16x16 header first, the big one second
      progressive    a progressive (SOF2) frame header of the big size
    """
    jpeg = _small_jpeg(progressive=trick == "progressive")
    k, sof = _sof(jpeg)
    big, rest = _resized(sof, width, height), jpeg[k + len(sof):]
    if trick == "two_sofs":
        return jpeg[:k] + big + sof + rest
    if trick == "sofs_big_last":
        return jpeg[:k] + sof + big + rest
    if trick == "progressive":
        return jpeg[:k] + big + rest
    prefix = {"fill": b"\xff", "rst": b"\xff\xd0",
              "app": b"\xff\xef\x00\x06ferl" + b"\xff\xfe\x00\x05hi\x00"}[trick]
    data = jpeg[:k] + prefix + big + rest
    # A scanner that takes the two bytes after the trick's marker as a length lands here: put the
    # decoy 16x16 frame header there, after the end of the image (decoders ignore trailing bytes).
    land = k + 2 + int.from_bytes(data[k + 2:k + 4], "big")
    if land > len(data):
        data += b"\x00" * (land - len(data)) + sof + b"\x00" * 16
    return data


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose IHDR claims width x height, with one small compressed row of data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def webp_bomb(width: int = 16000, height: int = 16000) -> bytes:
    """A lossy WebP whose VP8 frame header claims width x height (14-bit fields: at most 16383)."""
    ok, webp = cv2.imencode(".webp", np.zeros((16, 16, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 50])
    assert ok
    data = bytearray(webp.tobytes())
    assert data[12:16] == b"VP8 ", data[12:16]
    data[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    return bytes(data)
