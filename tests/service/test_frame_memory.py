"""Attacks on face detection's memory, each in a fresh process so its peak RSS is its own:
a raw frame whose stride claims 2 GB, a 16-bit RGBA PNG of 12 MP, the 49 KB JPEG bombs of issue 25
(a fill byte or an RST0 before a 400 MP frame header, a decoy 16x16 header where a naive scanner
lands), OpenCV's own ceiling, and 200,000 previous tracks.
Each must be refused (FrameError / INVALID_ARGUMENT) with less than 100 MB above the baseline."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import grpc
import numpy as np
import pytest

from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.server import build
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc
from tests.support.procs import ROOT

PROBE = textwrap.dedent("""
    import json, resource, sys
    import ferlite  # sets OpenCV's pixel ceiling before cv2 loads, as in every ferlite process
    import cv2, numpy as np
    from ferlite.services.facedetect.frames import FrameError, RawFrame, decode_encoded, decode_raw
    case = sys.argv[1]
    if case == "png16":
        ok, png = cv2.imencode(".png", np.zeros((3000, 4000, 4), np.uint16))
        data = png.tobytes()
        del png
    elif case.startswith("jpeg_"):
        from tests.support.image_tricks import jpeg_bomb
        data = jpeg_bomb("fill" if case == "jpeg_ceiling" else case[5:])
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = "accepted"
    try:
        if case == "stride":
            decode_raw(RawFrame(1, 1, "rgb8", 2**31 - 1, b"abc"), 12.0)
        elif case == "jpeg_ceiling":  # OpenCV itself, bypassing our header check: its ceiling refuses
            try:
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                outcome = "decoded" if image is not None else "refused: by OpenCV"
            except cv2.error:
                outcome = "refused: by OpenCV"
        else:
            image = decode_encoded(data, 12.0)
            outcome = f"decoded {image.shape} {image.dtype}"
    except FrameError as exc:
        outcome = "refused: " + str(exc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grown_mb": (peak - baseline) / 1024, "outcome": outcome}))
""")


@pytest.mark.parametrize("case", ["stride", "png16", "jpeg_fill", "jpeg_rst", "jpeg_ceiling"])
def test_decoding_costs_are_bounded(case) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE, case], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["grown_mb"] < 100, result
    if case == "stride":
        assert result["outcome"].startswith("refused: row_stride"), result
    elif case in ("jpeg_fill", "jpeg_rst"):  # both bombs: refused at the header, 20000x20000 named
        assert result["outcome"] == "refused: frame is 20000x20000 = 400.0 MP, above the 12 MP limit", result
    elif case == "jpeg_ceiling":
        assert result["outcome"] == "refused: by OpenCV", result
    else:  # a legal 12 MP frame: decoded, but as 8-bit RGB (36 MB), never 16-bit or float
        assert result["outcome"] == "decoded (3000, 4000, 3) uint8", result


def test_too_many_previous_tracks_are_refused_before_any_work() -> None:
    server = build(FaceDetectConfig(port=0, metrics_port=-1, detector="haar", crop_size=48)).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            tracks = [pb.Track(track_id=f"t{i}") for i in range(200_000)]
            _, jpeg = __import__("cv2").imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
            request = pb.ProcessRequest(frame=pb.Frame(encoded=jpeg.tobytes()), classroom_id="room", stream_id="s",
                                        previous_tracks=tracks)
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.FaceDetectionStub(channel).Process(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "previous_tracks has 200000 tracks" in err.value.details()
    finally:
        server.stop(0)
