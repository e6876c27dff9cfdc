"""A downstream refusal of what face detection sent is face detection's fault: the camera client
gets INTERNAL (counted by the error-rate alert), not INVALID_ARGUMENT (which blames the client)."""

from __future__ import annotations

from concurrent import futures

import cv2
import grpc
import numpy as np
import pytest
from skimage import data

from ferlite.base import preprocess
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.server import build
from ferlite.v1 import classifier_pb2_grpc
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc
from tests.support.fakes import RecordingClassifier, serve_classifier


class RefusingClassifier(classifier_pb2_grpc.ClassifierServicer):
    """A classifier that refuses every batch, as one would refuse crops of the wrong size."""

    def Classify(self, request, context):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "crops are 224x224, mobilenet_v2 expects 96x96")


def test_downstream_invalid_argument_reaches_the_client_as_internal() -> None:
    classifier = grpc.server(futures.ThreadPoolExecutor(2))
    classifier_pb2_grpc.add_ClassifierServicer_to_server(RefusingClassifier(), classifier)
    port = classifier.add_insecure_port("127.0.0.1:0")
    classifier.start()
    server = build(FaceDetectConfig(port=0, metrics_port=-1, detector="haar", crop_size=64,
                                    classifier_url=f"127.0.0.1:{port}", aggregator_url="127.0.0.1:9")).start()
    try:
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel, pytest.raises(grpc.RpcError) as err:
            pb_grpc.FaceDetectionStub(channel).Process(pb.ProcessRequest(
                frame=pb.Frame(encoded=jpeg), classroom_id="room", stream_id="cam", record=False), timeout=10)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert "expects 96x96" in err.value.details()
    finally:
        server.stop(0)
        classifier.stop(0)


def test_crops_travel_as_uint8() -> None:
    from ferlite.v1 import common_pb2

    recorder = RecordingClassifier()
    classifier, port = serve_classifier(recorder)
    server = build(FaceDetectConfig(port=0, metrics_port=-1, detector="haar", crop_size=96,
                                    classifier_url=f"127.0.0.1:{port}", aggregator_url="127.0.0.1:9")).start()
    try:
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            reply = pb_grpc.FaceDetectionStub(channel).Process(pb.ProcessRequest(
                frame=pb.Frame(encoded=jpeg), classroom_id="room", stream_id="cam", record=False), timeout=10)
        assert reply.faces
        crop = recorder.requests[0].crops[0]
        assert crop.dtype == common_pb2.CROP_DTYPE_UINT8 and len(crop.data) == 96 * 96 * 3
        # What travelled is the face itself, cut by the shared preprocessing: the same pixels a local
        # crop of the reported box gives (the classifier here is a test double; its answer proves nothing).
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        b = reply.faces[0].box
        local = preprocess.face_pixels(rgb, 96, preprocess.Box(b.x, b.y, b.width, b.height), 0.2)
        sent = np.frombuffer(crop.data, np.uint8).reshape(96, 96, 3)
        assert np.abs(sent.astype(int) - local.astype(int)).mean() < 1.0
    finally:
        server.stop(0)
        classifier.stop(0)
