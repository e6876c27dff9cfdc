"""The annotated video a person can read: each label names the model, sits on a dark band (legible
on any background), and is never cut by the frame's edge, wherever the face is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ferlite.app.stream import annotate
from ferlite.v1 import common_pb2
from ferlite.v1 import facedetect_pb2 as pb

BAND = (20, 20, 20)


def face(x: float, y: float, side: float = 60) -> pb.LabelledFace:
    return pb.LabelledFace(box=common_pb2.BoundingBox(x=x, y=y, width=side, height=side))


@pytest.mark.parametrize(("x", "y"), [(0, 0), (580, 0), (580, 420), (300, 200), (-10, -10)])
def test_the_label_band_is_whole_inside_the_frame(x, y) -> None:
    frame = np.full((480, 640, 3), 235, np.uint8)  # a bright wall: the band must still be there
    out = annotate(frame, [(face(x, y), "surprise", 0.87)], "mobilenet_v3_large")
    text = "surprise 0.87 [MNv3-L]"
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 2)
    band = np.all(out == BAND, axis=2)
    ys, xs = np.nonzero(band)
    assert len(xs), "no label band"
    # the whole band is drawn: its width is the text's plus padding, so no part fell outside the frame
    assert xs.max() - xs.min() + 1 >= tw + 4 - 1
    assert xs.min() >= 0 and xs.max() < 640 and ys.min() >= 0 and ys.max() < 480


def test_the_model_is_named_and_the_input_frame_is_untouched() -> None:
    frame = np.zeros((200, 200, 3), np.uint8)
    out = annotate(frame, [(face(50, 80), "happy", 0.9)], "efficientnet_b0")
    assert frame.max() == 0 and out.max() > 0
    plain = annotate(frame, [(face(50, 80), "happy", 0.9)], "")
    assert not np.array_equal(out, plain)  # the tag adds text


def _luminance(rgb) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_labels_grow_with_the_frame_and_keep_a_readable_contrast() -> None:
    """Issue 30: labels were 13 px tall on any frame (thin on a 1080p video) and the uncertain grey
    was low-contrast. Now text is about 2.5 % of the frame's height and both colours pass WCAG AA."""
    from ferlite.app.stream import CERTAIN, LABEL_BAND, UNCERTAIN

    frame = np.full((1080, 1920, 3), 235, np.uint8)
    out = annotate(frame, [(face(800, 500, side=200), "happy", 0.9)], "mobilenet_v2")
    rows = np.nonzero(np.all(out == LABEL_BAND, axis=2).any(axis=1))[0]
    assert rows.max() - rows.min() + 1 >= 30  # the band (text + padding) is at least 30 px tall on 1080p
    for colour in (CERTAIN, UNCERTAIN):
        lighter, darker = sorted((_luminance(colour), _luminance(LABEL_BAND)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, colour


def test_a_frame_narrower_than_the_label_shrinks_the_text_instead_of_cutting_it() -> None:
    frame = np.full((120, 90, 3), 235, np.uint8)
    out = annotate(frame, [(face(10, 40, side=40), "surprise", 0.87)], "mobilenet_v3_large")
    band = np.all(out == BAND, axis=2)
    rows = np.nonzero(band.any(axis=1))[0]
    strip = out[rows.min():rows.max() + 1]
    text = ~np.all(strip == BAND, axis=2) & ~np.all(strip == 235, axis=2)  # the letters, inside the band
    columns = np.nonzero(text.any(axis=0))[0]
    assert columns.max() - columns.min() > 50  # the text is drawn ...
    assert columns.max() <= 90 - 3  # ... and ends before the frame's edge, with band after it: nothing cut
