"""Face detection through the real gRPC server, on real faces that scikit-image ships."""

from __future__ import annotations

import struct
import zlib

import cv2
import grpc
import numpy as np
import pytest
from skimage import data

from ferlite.base import preprocess
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.detectors import make_detector
from ferlite.services.facedetect.server import build
from ferlite.services.facedetect.tracking import Track, assign
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc
from tests.support.image_tricks import png_bomb

ASTRONAUT_FACE = (174, 70, 105, 105)  # x, y, w, h: Eileen Collins' face in skimage.data.astronaut()


def encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def box_iou(a, b) -> float:
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    iw = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    ih = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


@pytest.fixture(scope="module")
def stub():
    config = FaceDetectConfig(port=0, metrics_port=-1, crop_size=64, max_megapixels=4.0)
    server = build(config).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield pb_grpc.FaceDetectionStub(channel)
    channel.close()
    server.stop(0)


def test_detects_the_astronaut_with_landmarks_and_normalised_crop(stub) -> None:
    reply = stub.Detect(pb.DetectRequest(frame=pb.Frame(encoded=encode(data.astronaut())), include_crops=True))
    assert reply.detector == "blazeface_full" and (reply.frame_width, reply.frame_height) == (512, 512)
    assert len(reply.faces) == 1
    face = reply.faces[0]
    assert box_iou((face.box.x, face.box.y, face.box.width, face.box.height), ASTRONAUT_FACE) > 0.7
    assert face.score > 0.8 and len(face.landmarks) == 6
    crop = np.frombuffer(face.crop.data, "<f4").reshape(face.crop.height, face.crop.width, 3)
    assert crop.shape == (64, 64, 3) and crop.min() >= 0.0 and crop.max() <= 1.0


def test_crop_is_the_shared_preprocessing_output(stub) -> None:
    """The service's crop equals preprocess.prepare_face on the same frame, box and eyes."""
    rgb = data.astronaut()
    png = encode(rgb, ".png")  # lossless, so the service sees exactly `rgb`
    reply = stub.Detect(pb.DetectRequest(frame=pb.Frame(encoded=png), include_crops=True, crop_size=48))
    face = reply.faces[0]
    served = np.frombuffer(face.crop.data, "<f4").reshape(48, 48, 3)
    detector_face = make_detector("blazeface_full").detect(rgb)[0]
    local = preprocess.prepare_face(rgb, 48, preprocess.Box(*detector_face.box), 0.2, detector_face.eyes)
    assert np.array_equal(served, local)


def test_raw_frames_match_encoded_ones(stub) -> None:
    rgb = data.astronaut()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    padded = np.zeros((512, 512 * 3 + 16), np.uint8)
    padded[:, : 512 * 3] = bgr.reshape(512, -1)
    raw = pb.RawFrame(width=512, height=512, format=pb.PIXEL_FORMAT_BGR8, row_stride=512 * 3 + 16,
                      data=padded.tobytes())
    from_raw = stub.Detect(pb.DetectRequest(frame=pb.Frame(raw=raw)))
    from_png = stub.Detect(pb.DetectRequest(frame=pb.Frame(encoded=encode(rgb, ".png"))))
    assert len(from_raw.faces) == len(from_png.faces) == 1
    assert from_raw.faces[0].box == from_png.faces[0].box
    assert not from_raw.faces[0].HasField("crop")  # include_crops not set: boxes only


def test_a_frame_without_faces(stub) -> None:
    assert len(stub.Detect(pb.DetectRequest(frame=pb.Frame(encoded=encode(data.coffee())))).faces) == 0


def _lfw_canvas(image: np.ndarray) -> np.ndarray:
    """skimage's 25x25 LFW crops, enlarged and framed so a detector sees a face with context."""
    grey = cv2.resize((image * 255).astype(np.uint8), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(cv2.copyMakeBorder(grey, 60, 60, 60, 60, cv2.BORDER_CONSTANT, value=128),
                        cv2.COLOR_GRAY2RGB)


@pytest.mark.parametrize(("detector", "min_recall", "max_false"), [("blazeface_full", 0.6, 5), ("haar", 0.7, 5)])
def test_recall_and_false_positives_on_lfw(detector, min_recall, max_false) -> None:
    lfw = data.lfw_subset()  # 100 faces, then 100 non-faces
    d = make_detector(detector)
    recall = np.mean([len(d.detect(_lfw_canvas(lfw[i]))) > 0 for i in range(100)])
    false = sum(len(d.detect(_lfw_canvas(lfw[i]))) for i in range(100, 200))
    assert recall >= min_recall, recall
    assert false <= max_false, false


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize(("frame", "needle"), [
    (pb.Frame(), "frame is missing"),
    (pb.Frame(encoded=b""), "frame is empty"),
    (pb.Frame(encoded=b"GIF89a......"), "not JPEG, PNG or WebP"),
    (pb.Frame(encoded=b"\xff\xd8\xff\xe0" + b"\x00" * 40), "header is truncated or corrupt"),
    (pb.Frame(encoded=png_bomb(20000, 20000)), "20000x20000 = 400.0 MP, above the 4 MP limit"),
    (pb.Frame(encoded=_png_header(20000, 20000)), "PNG header is truncated or corrupt"),  # no chunk after IHDR
    (pb.Frame(encoded=png_bomb(64, 64)), "could not be decoded"),  # a legal header, too little data
    (pb.Frame(raw=pb.RawFrame(width=10, height=10, format=pb.PIXEL_FORMAT_RGB8, data=b"\x00" * 299)),
     "has 299 bytes; 10x10 RGB8 with stride 30 needs 300"),
    (pb.Frame(raw=pb.RawFrame(width=10, height=10, data=b"\x00" * 300)), "raw pixel format 'unspecified'"),
    (pb.Frame(raw=pb.RawFrame(width=0, height=10, format=pb.PIXEL_FORMAT_GRAY8)), "frame has no pixels"),
    (pb.Frame(raw=pb.RawFrame(width=10, height=10, format=pb.PIXEL_FORMAT_RGB8, row_stride=20, data=b"")),
     "row_stride 20 is smaller"),
])
def test_bad_frames_are_invalid_argument(stub, frame, needle) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Detect(pb.DetectRequest(frame=frame))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    assert len(stub.Detect(pb.DetectRequest(frame=pb.Frame(encoded=encode(data.astronaut())))).faces) == 1


def test_tracks_keep_ids_and_new_faces_get_deterministic_ids() -> None:
    prev = [Track("tA", (100, 100, 50, 50)), Track("tB", (300, 100, 50, 50))]
    boxes = [(305, 102, 50, 50), (104, 98, 50, 50), (500, 500, 40, 40)]
    ids = assign(boxes, prev, "cam", 7)
    assert ids[:2] == ["tB", "tA"] and ids[2] not in ("tA", "tB")
    assert assign(boxes, prev, "cam", 7) == ids  # a retried frame gets the same ids
    assert assign(boxes, prev, "cam", 8)[2] != ids[2]


@pytest.mark.parametrize(("track_id", "needle"), [
    ("bad id", "previous_tracks[0].track_id 'bad id' must be"),
    ("t1\n", "previous_tracks[0].track_id 't1\\n' must be"),
    ("x" * 100_000, "... (100000 characters) must be"),
])
def test_track_ids_sent_back_are_validated_and_never_echoed_whole(stub, track_id, needle) -> None:
    request = pb.ProcessRequest(frame=pb.Frame(encoded=encode(data.astronaut())), classroom_id="room-1",
                                stream_id="cam-1", previous_tracks=[pb.Track(track_id=track_id)])
    with pytest.raises(grpc.RpcError) as err:
        stub.Process(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details() and len(err.value.details()) < 300


def test_the_same_track_twice_is_refused(stub) -> None:
    request = pb.ProcessRequest(frame=pb.Frame(encoded=encode(data.astronaut())), classroom_id="room-1",
                                stream_id="cam-1", previous_tracks=[pb.Track(track_id="same")] * 4)
    with pytest.raises(grpc.RpcError) as err:
        stub.Process(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "repeats" in err.value.details()


def test_detect_crops_are_bounded_before_they_exist(stub) -> None:
    """Issue 25: crop_size 1024 on a 4-face frame made +241 MB and a 50 MB answer nobody could receive.
    Now the size is bounded, and the answer's bytes are checked from the face count before any crop."""
    group = np.concatenate([np.concatenate([data.astronaut()] * 3, axis=1)] * 2, axis=0)  # 6 faces, 1.6 MP
    frame = pb.Frame(encoded=encode(group))
    with pytest.raises(grpc.RpcError) as err:
        stub.Detect(pb.DetectRequest(frame=frame, include_crops=True, crop_size=1024))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "32..256" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Detect(pb.DetectRequest(frame=frame, include_crops=True, crop_size=256))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "6 crops of 256 px" in err.value.details()
    reply = stub.Detect(pb.DetectRequest(frame=frame, include_crops=True, crop_size=128))
    assert len(reply.faces) == 6 and reply.faces[0].crop.height == 128
    assert len(stub.Detect(pb.DetectRequest(frame=frame, crop_size=256)).faces) == 6  # boxes only: fine
