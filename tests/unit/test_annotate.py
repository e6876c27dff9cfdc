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
