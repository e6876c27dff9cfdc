"""Bad input at scale: hypothesis sends 1,000+ malformed frames and messages to each service,
running as its own process. Every one must be answered INVALID_ARGUMENT, the process must stay
up, and its memory must stay bounded."""

from __future__ import annotations

import random
import struct
import sys
import time

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferlite.app.load import rss_kb
from ferlite.base.events import event_to_pb
from ferlite.base.labels import EMOTIONS
from ferlite.v1 import aggregator_pb2 as apb
from ferlite.v1 import aggregator_pb2_grpc as apb_grpc
from ferlite.v1 import classifier_pb2 as cpb
from ferlite.v1 import classifier_pb2_grpc as cpb_grpc
from ferlite.v1 import common_pb2
from ferlite.v1 import facedetect_pb2 as fpb
from ferlite.v1 import facedetect_pb2_grpc as fpb_grpc
from tests.conftest import TINY_SIZE
from tests.support.events import event
from tests.support.procs import ServiceProcess

EXAMPLES = 1000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


class Fuzzed:
    """A service subprocess plus a counter of the answers it gave."""

    def __init__(self, args: list[str]) -> None:
        self.service = ServiceProcess([sys.executable, "-m", "ferlite", "serve", *args, "--port", "0",
                                       "--metrics-port", "-1"]).start(timeout=180)
        self.channel = grpc.insecure_channel(self.service.target)
        self.codes: dict[str, int] = {}
        self.rss_before = rss_kb(self.service.proc.pid)  # the baseline, whatever runs first

    def expect_invalid(self, call) -> None:
        try:
            call()
        except grpc.RpcError as exc:
            self.codes[exc.code().name] = self.codes.get(exc.code().name, 0) + 1
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details())
            assert exc.details()
            return
        raise AssertionError("malformed input was accepted")

    def close(self) -> int | None:
        self.channel.close()
        return self.service.stop()


BURST = 300


def _survives_a_burst(fuzzed: Fuzzed, send_bad, limit_kb: int = 60_000) -> None:
    """Order-independent: `BURST` malformed calls of its own (the hypothesis tests add theirs when
    they ran first), each INVALID_ARGUMENT; then the process is alive, still answers, and its RSS
    grew less than `limit_kb` since it started."""
    before = sum(fuzzed.codes.values())
    rng = random.Random(7)
    for i in range(BURST):
        fuzzed.expect_invalid(lambda i=i: send_bad(i, rng))
    assert sum(fuzzed.codes.values()) - before == BURST
    assert fuzzed.service.proc.poll() is None, "the service died"
    grown = rss_kb(fuzzed.service.proc.pid) - fuzzed.rss_before
    assert grown < limit_kb, f"RSS grew by {grown} kB"


# ------------------------------------------------------------------------------------ facedetect

MAGICS = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"GIF89a", b"BM"]


def _tiny_jpeg() -> bytes:
    import cv2
    import numpy as np

    return cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()


def _png_claiming(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)


bad_encoded = st.one_of(
    st.builds(lambda m, tail: m + tail, st.sampled_from(MAGICS), st.binary(max_size=3000)),
    st.builds(_png_claiming, st.integers(20_000, 60_000), st.integers(20_000, 60_000)),
)
bad_raw = st.builds(
    lambda w, h, fmt, delta, stride: fpb.RawFrame(width=w, height=h, format=fmt, row_stride=stride,
                                                   data=b"\x7f" * max(0, w * h * 3 + delta)),
    st.integers(-3, 300), st.integers(-3, 300), st.sampled_from([0, 1, 2, 3, 4, 5, 99]),
    st.integers(-500, 500).filter(lambda d: d != 0), st.sampled_from([0, 1, 7]))


@pytest.fixture(scope="module")
def facedetect():
    f = Fuzzed(["facedetect", "--max-fps-per-client", "0", "--max-fps-per-peer", "0", "--max-megapixels", "4"])
    yield f
    assert f.close() == 0


@FUZZ
@given(frame=st.one_of(bad_encoded.map(lambda b: fpb.Frame(encoded=b)), bad_raw.map(lambda r: fpb.Frame(raw=r))))
def test_facedetect_rejects_malformed_frames(facedetect, frame) -> None:
    stub = fpb_grpc.FaceDetectionStub(facedetect.channel)
    if frame.WhichOneof("payload") == "raw":
        r = frame.raw
        bpp = {1: 1, 2: 3, 3: 3, 4: 4, 5: 4}.get(r.format)
        stride = r.row_stride or (r.width * bpp if bpp else 0)
        if bpp and r.width > 0 and r.height > 0 and stride >= r.width * bpp and \
                len(r.data) in (r.height * stride, r.height * stride - (stride - r.width * bpp)):
            return  # consistent by chance: a valid frame, not part of this test
    facedetect.expect_invalid(lambda: stub.Detect(fpb.DetectRequest(frame=frame), timeout=10))


def test_facedetect_survives_malformed_frames(facedetect) -> None:
    stub = fpb_grpc.FaceDetectionStub(facedetect.channel)
    _survives_a_burst(facedetect, lambda i, rng: stub.Detect(fpb.DetectRequest(frame=fpb.Frame(
        encoded=MAGICS[i % len(MAGICS)] + rng.randbytes(rng.randrange(3000)))), timeout=10))
    assert stub.Detect(fpb.DetectRequest(frame=fpb.Frame(encoded=_tiny_jpeg())), timeout=10) is not None


# ------------------------------------------------------------------------------------ aggregator

BREAKERS = {
    "event_id": st.sampled_from(["", "x" * 200, "bad id", "ä"]),
    "classroom_id": st.sampled_from(["", "room/1", "r" * 100]),
    "stream_id": st.sampled_from(["", "cam 1"]),
    "timestamp": st.sampled_from([0.0, -1.0, float("nan"), float("inf"), 1e12, 1.0]),
    "probabilities": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=9).filter(
        lambda p: len(p) != 7 or not all(0 <= x <= 1 for x in p) or abs(sum(p) - 1) > 0.02),
    "label": st.text(max_size=12).filter(lambda s: s not in EMOTIONS),
    "confidence": st.sampled_from([-0.1, 1.5, float("nan")]),
    "architecture": st.text(max_size=12),
}


@pytest.fixture(scope="module")
def aggregator(tmp_path_factory):
    f = Fuzzed(["aggregator", "--data-dir", str(tmp_path_factory.mktemp("fuzz-agg")), "--max-batch", "64"])
    yield f
    assert f.close() == 0


@FUZZ
@given(field=st.sampled_from(sorted(BREAKERS)), data=st.data(), size=st.integers(1, 5), where=st.integers(0, 4))
def test_aggregator_rejects_malformed_events(aggregator, field, data, size, where) -> None:
    value = data.draw(BREAKERS[field])
    events = [event_to_pb(event(i, ts=time.time())) for i in range(size)]
    broken = events[where % size]
    if field == "architecture":
        if value in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0"):
            return
        broken.model.architecture = value
    elif field == "probabilities":
        del broken.probabilities[:]
        broken.probabilities.extend(value)
        if len(broken.probabilities) == 7 and all(0 <= x <= 1 for x in broken.probabilities) and \
                abs(sum(broken.probabilities) - 1) <= 0.01:
            return  # float32 rounding made it valid
    else:
        setattr(broken, field, value)
    stub = apb_grpc.AggregatorStub(aggregator.channel)
    aggregator.expect_invalid(lambda: stub.RecordEvents(apb.RecordEventsRequest(events=events), timeout=10))


def test_aggregator_rejects_oversized_batches_and_survived(aggregator) -> None:
    stub = apb_grpc.AggregatorStub(aggregator.channel)
    big = [event_to_pb(event(i, ts=time.time())) for i in range(65)]
    aggregator.expect_invalid(lambda: stub.RecordEvents(apb.RecordEventsRequest(events=big), timeout=10))
    summary = stub.GetSummary(apb.SummaryRequest(classroom_id="room-1", window_seconds=3600))
    assert summary.total_events == 0  # not one event of a malformed batch was applied


def test_aggregator_survives_malformed_batches(aggregator) -> None:
    stub = apb_grpc.AggregatorStub(aggregator.channel)

    def send_bad(i: int, rng: random.Random):
        events = [event_to_pb(event(k, ts=time.time())) for k in range(1 + i % 5)]
        events[-1].confidence = rng.choice([-0.1, 1.5, float("nan")])
        return stub.RecordEvents(apb.RecordEventsRequest(events=events), timeout=10)

    _survives_a_burst(aggregator, send_bad)
    assert stub.GetSummary(apb.SummaryRequest(classroom_id="room-1", window_seconds=3600)).total_events == 0


# ------------------------------------------------------------------------------------ classifier

@pytest.fixture(scope="module")
def classifier(exported_models, tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz-cls")
    f = Fuzzed(["classifier", "--model-dir", str(exported_models), "--repository-dir", str(work),
                "--triton-metrics-port", "0",
                "--max-batch", "8"])
    yield f
    assert f.close() == 0


crop = st.builds(
    lambda h, w, c, dtype, n: common_pb2.FaceCrop(height=h, width=w, channels=c, dtype=dtype, data=b"\x00" * n),
    st.integers(-2, 64), st.integers(-2, 64), st.integers(0, 5), st.sampled_from([0, 1, 2, 7]), st.integers(0, 50_000))


def _valid(c: common_pb2.FaceCrop) -> bool:
    size = {1: 4, 2: 1}.get(c.dtype)
    return bool(size) and c.channels == 3 and c.height == c.width == TINY_SIZE and \
        len(c.data) == c.height * c.width * 3 * size


@FUZZ
@given(crops=st.lists(crop, min_size=0, max_size=10))
def test_classifier_rejects_malformed_crops(classifier, crops) -> None:
    if crops and len(crops) <= 8 and all(_valid(c) for c in crops):
        return
    stub = cpb_grpc.ClassifierStub(classifier.channel)
    classifier.expect_invalid(lambda: stub.Classify(cpb.ClassifyRequest(crops=crops, architecture="mobilenet_v2"),
                                                    timeout=10))


def test_classifier_survives_malformed_crops(classifier) -> None:
    stub = cpb_grpc.ClassifierStub(classifier.channel)
    _survives_a_burst(classifier, lambda i, rng: stub.Classify(cpb.ClassifyRequest(crops=[common_pb2.FaceCrop(
        height=TINY_SIZE, width=TINY_SIZE, channels=3, dtype=2, data=b"\x00" * rng.randrange(TINY_SIZE ** 2 * 3))]),
        timeout=10))
    good = common_pb2.FaceCrop(height=TINY_SIZE, width=TINY_SIZE, channels=3, dtype=2,
                               data=b"\x00" * TINY_SIZE ** 2 * 3)
    assert len(stub.Classify(cpb.ClassifyRequest(crops=[good]), timeout=30).results) == 1
