"""ProcessStream: a frame's labels come back before its events are stored, acknowledgements say
when they are, and a frame whose replica died before its acknowledgement is sent again and stored
once. Face detection is real (Haar, so it runs anywhere); the classifier and aggregator are
scripted doubles, so a test can hold the aggregator's answer and see what was stored."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import cv2
import grpc
import pytest
from skimage import data

from ferlite.app.client import CameraSession, CameraStream
from ferlite.base.events import Event
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.recorder import StreamRecorder
from ferlite.services.facedetect.server import build
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc
from tests.support.fakes import RecordingClassifier, serve_classifier

JPEG = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()


class HeldAggregator(aggregator_pb2_grpc.AggregatorServicer):
    """Stores events by id (a retry is stored once); `gate` holds every answer until set; while
    `refuse` is set it answers UNAVAILABLE, as with Redis and the spool both gone."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.refuse = False
        self.stored: dict[str, aggregator_pb2.EmotionEvent] = {}
        self.calls = 0

    def RecordEvents(self, request, context):
        self.calls += 1
        assert self.gate.wait(30)
        if self.refuse:
            context.abort(grpc.StatusCode.UNAVAILABLE, "redis and the spool are gone")
        fresh = [e for e in request.events if e.event_id not in self.stored]
        self.stored.update({e.event_id: e for e in fresh})
        return aggregator_pb2.RecordEventsResponse(accepted=len(fresh), duplicates=len(request.events) - len(fresh))


@pytest.fixture
def downstream():
    classifier, classifier_port = serve_classifier(RecordingClassifier())
    aggregator = HeldAggregator()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    aggregator_pb2_grpc.add_AggregatorServicer_to_server(aggregator, server)
    aggregator_port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def facedetect(port: int = 0, **overrides):
        return build(FaceDetectConfig(port=port, metrics_port=-1, detector="haar", crop_size=64,
                                      classifier_url=f"127.0.0.1:{classifier_port}",
                                      aggregator_url=f"127.0.0.1:{aggregator_port}", **overrides)).start()

    yield aggregator, facedetect
    aggregator.gate.set()
    server.stop(0)
    classifier.stop(0)


def event_ids(replies) -> set[str]:
    return {f.event_id for r in replies for f in r.faces}


def test_labels_come_back_before_the_events_are_stored_and_acks_follow(downstream) -> None:
    aggregator, facedetect = downstream
    server = facedetect()
    aggregator.gate.clear()  # the aggregator answers nothing yet
    try:
        with CameraSession(f"127.0.0.1:{server.port}", "room-1", "cam-1") as session:
            stream = CameraStream(session)
            replies = [stream.process(JPEG) for _ in range(3)]
            assert all(r.faces and not r.recorded for r in replies)  # labels, while nothing is stored
            # relayed from the classifier, a test double whose fixed answer is "happy": this checks the
            # relay (labels before storage), not any classification
            assert replies[0].faces[0].classification.label == "happy"
            assert set(stream.pending) == {0, 1, 2} and not stream.stored and not aggregator.stored
            aggregator.gate.set()
            assert stream.wait_acknowledged(10)
            assert stream.stored == {0, 1, 2} and not stream.pending
            assert set(aggregator.stored) == event_ids(replies)  # every face of every frame
            assert aggregator.calls == 2  # frame 0 alone; frames 1 and 2 waited and went together
            stream.close()
    finally:
        server.stop(0)


def test_a_frame_its_replica_dropped_before_the_ack_is_sent_again_and_stored_once(downstream) -> None:
    aggregator, facedetect = downstream
    first = facedetect()
    port = first.port
    aggregator.gate.clear()
    with CameraSession(f"127.0.0.1:{port}", "room-1", "cam-2") as session:
        stream = CameraStream(session)
        replies = [stream.process(JPEG) for _ in range(2)]
        first.stop(0)  # the replica goes away: frame 0's record call is out, frame 1's waits
        aggregator.gate.set()
        second = facedetect(port)  # another replica behind the same address
        try:
            assert stream.reopen() == 2
            assert stream.wait_acknowledged(15), f"pending {sorted(stream.pending)}"
            assert stream.stored == {0, 1}
            assert set(aggregator.stored) == event_ids(replies)  # the same ids: stored once each
            after = stream.process(JPEG)  # and the stream goes on
            assert after.faces and stream.wait_acknowledged(10) and stream.stored == {0, 1, 2}
            stream.close()
        finally:
            second.stop(0)


def test_events_the_aggregator_refused_stay_pending_until_sent_again(downstream) -> None:
    aggregator, facedetect = downstream
    server = facedetect()
    aggregator.refuse = True
    try:
        with CameraSession(f"127.0.0.1:{server.port}", "room-1", "cam-3") as session:
            stream = CameraStream(session)
            reply = stream.process(JPEG)
            assert not stream.wait_acknowledged(10)  # returns once the only pending frame failed
            assert stream.failed == {0} and set(stream.pending) == {0} and not aggregator.stored
            aggregator.refuse = False
            stream.reopen()
            assert stream.wait_acknowledged(10) and stream.stored == {0} and not stream.failed
            assert set(aggregator.stored) == event_ids([reply])
            stream.close()
    finally:
        server.stop(0)


def _event(i: int) -> Event:
    return Event(f"e{i}", "room", "cam", "t", time.time(), (0.0, 0.0, 1.0, 1.0), (1 / 7,) * 7, "happy", 0.2,
                 True, "mobilenet_v2", "1")


def test_the_recorder_batches_what_waits_acks_empty_frames_and_reports_failures() -> None:
    calls: list[list[str]] = []
    acks: list[tuple[list[int], list[int]]] = []
    release = threading.Event()

    def record(events: list[Event], timeout: float) -> bool:
        calls.append([e.event_id for e in events])
        release.wait(5)
        if any(e.event_id == "e9" for e in events):
            raise RuntimeError("the aggregator client broke")
        return True

    recorder = StreamRecorder(record, lambda stored, failed: acks.append((stored, failed)), 1.0, max_events=3)
    recorder.submit(0, [_event(0)])
    while not calls:
        time.sleep(0.01)
    recorder.submit(1, [_event(1), _event(2)])
    recorder.submit(2, [])  # no face: nothing to store
    recorder.submit(3, [_event(3), _event(4)])  # over max_events with frame 1: the batch after
    recorder.submit(4, [_event(9)])
    release.set()
    recorder.close()
    assert calls == [["e0"], ["e1", "e2"], ["e3", "e4", "e9"]]
    assert acks == [([0], []), ([1, 2], []), ([], [3, 4])]
    with pytest.raises(RuntimeError, match="closed"):
        recorder.submit(5, [])


def test_a_bad_frame_ends_the_stream_with_its_own_status_after_the_good_ones(downstream) -> None:
    from ferlite.v1 import facedetect_pb2 as pb
    from ferlite.v1 import facedetect_pb2_grpc as pb_grpc

    aggregator, facedetect = downstream
    server = facedetect()
    good = pb.ProcessRequest(frame=pb.Frame(encoded=JPEG), classroom_id="room-1", stream_id="cam-4", frame_index=0,
                             record=True, session_id="s1")
    bad = pb.ProcessRequest(frame=pb.Frame(encoded=JPEG), stream_id="cam-4", frame_index=1)  # no classroom
    updates = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = pb_grpc.FaceDetectionStub(channel).ProcessStream(iter([good, bad]), timeout=30)
            with pytest.raises(grpc.RpcError) as err:
                for update in call:
                    updates.append(update)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "classroom_id" in err.value.details()
        kinds = sorted(u.WhichOneof("update") for u in updates)
        assert kinds == ["ack", "result"]  # the good frame: answered, and recorded before the stream ended
        assert [list(u.ack.stored) for u in updates if u.HasField("ack")] == [[0]] and aggregator.stored
    finally:
        server.stop(0)


def test_a_frame_refused_as_the_callers_fault_is_not_kept_to_send_again(downstream) -> None:
    """As CameraSession never retries a caller error, CameraStream does not keep such a frame: sent
    again after reopen it would end every new stream the same way."""
    aggregator, facedetect = downstream
    server = facedetect()
    try:
        with CameraSession(f"127.0.0.1:{server.port}", "room-1", "cam-5") as session:
            stream = CameraStream(session)
            first = stream.process(JPEG)
            with pytest.raises(grpc.RpcError) as err:
                stream.process(b"not a picture")
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert 1 not in stream.pending
            stream.reopen()
            last = stream.process(JPEG)  # the new stream works: the bad frame was not sent again
            assert stream.wait_acknowledged(10) and stream.stored == {0, 2}
            assert set(aggregator.stored) == event_ids([first, last])
            stream.close()
    finally:
        server.stop(0)


@pytest.mark.parametrize("indexes", [[0, 1, 1], [0, 2, 1]])
def test_a_repeated_or_earlier_frame_index_ends_the_stream_before_its_events_are_made(downstream, indexes) -> None:
    """Issue 25: a repeated or decreasing frame index on a stream once stored events under another
    frame's data. It is refused (INVALID_ARGUMENT naming both indexes); the frames before it stand."""
    from ferlite.v1 import facedetect_pb2 as pb
    from ferlite.v1 import facedetect_pb2_grpc as pb_grpc

    aggregator, facedetect = downstream
    server = facedetect()
    frames = [pb.ProcessRequest(frame=pb.Frame(encoded=JPEG), classroom_id="room-1", stream_id="cam-5",
                                frame_index=i, record=True, session_id="s1") for i in indexes]
    updates = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = pb_grpc.FaceDetectionStub(channel).ProcessStream(iter(frames), timeout=30)
            with pytest.raises(grpc.RpcError) as err:
                for update in call:
                    updates.append(update)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"frame_index {indexes[2]} does not follow {indexes[1]}" in err.value.details()
        results = [u.frame_index for u in updates if u.HasField("result")]
        assert results == indexes[:2]
        stored_frames = {int(e.split(":")[2]) for e in aggregator.stored}
        assert stored_frames <= set(indexes[:2])
    finally:
        server.stop(0)


def test_a_paused_stream_is_closed_and_frees_its_worker(downstream) -> None:
    """Issue 25: 20 idle ProcessStreams (cameras that opened a stream and paused) held every worker of
    face detection until the 5-minute connection age. After stream_idle_seconds without a frame the
    stream ends UNAVAILABLE naming the reason, the frame it answered is still stored, and the server's
    workers serve others again (here only 2, both once held by paused streams)."""
    from ferlite.v1 import facedetect_pb2 as pb
    from ferlite.v1 import facedetect_pb2_grpc as pb_grpc

    aggregator, facedetect = downstream
    server = facedetect(max_workers=2, stream_idle_seconds=1.0)
    resume = threading.Event()

    def paused(stream_id: str):
        yield pb.ProcessRequest(frame=pb.Frame(encoded=JPEG), classroom_id="room-1", stream_id=stream_id,
                                frame_index=0, record=True, session_id="s1")
        resume.wait(30)  # the camera pauses

    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.FaceDetectionStub(channel)
            calls = [stub.ProcessStream(paused(f"cam-{k}"), timeout=30) for k in range(2)]
            started = time.monotonic()
            for call in calls:
                updates = []
                with pytest.raises(grpc.RpcError) as err:
                    for update in call:
                        updates.append(update)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "no frame for 1 s" in err.value.details()
                assert any(u.HasField("result") for u in updates)
            assert time.monotonic() - started < 10
            reply = stub.Process(pb.ProcessRequest(frame=pb.Frame(encoded=JPEG), classroom_id="room-1",
                                                   stream_id="cam-9", record=False), timeout=10)
            assert reply.faces  # a worker is free again
        deadline = time.monotonic() + 10  # the answered frames were recorded all the same
        while {e.split(":")[0] for e in aggregator.stored} < {"cam-0", "cam-1"}:
            assert time.monotonic() < deadline, sorted(aggregator.stored)
            time.sleep(0.05)
    finally:
        resume.set()
        server.stop(0)
