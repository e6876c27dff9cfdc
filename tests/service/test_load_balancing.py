"""Scale-out: face detection spreads its calls over every replica of the classifier and of the
aggregator (round robin over all resolved addresses), instead of pinning to the first one.

The two classifier replicas are test doubles (`tests.support.fakes.RecordingClassifier`: they count
the calls each one gets and answer a fixed distribution); the aggregators are real, on a real Redis.
What is tested is face detection's spreading, which does not depend on the classifier's answers."""

from __future__ import annotations

import time

import cv2
import grpc
from skimage import data

from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import build as build_aggregator
from ferlite.services.facedetect.config import FaceDetectConfig
from ferlite.services.facedetect.server import build as build_facedetect
from ferlite.v1 import facedetect_pb2 as pb
from ferlite.v1 import facedetect_pb2_grpc as pb_grpc
from tests.support.fakes import RecordingClassifier, serve_classifier
from tests.support.redis import start_redis


def test_two_replicas_of_each_downstream_service_both_get_traffic(tmp_path) -> None:
    redis_server = start_redis(tmp_path / "redis")
    recorders = [RecordingClassifier(), RecordingClassifier()]
    classifiers = [serve_classifier(r) for r in recorders]
    aggregators = [build_aggregator(AggregatorConfig(port=0, metrics_port=-1, redis_url=redis_server.url,
                                                     data_dir=str(tmp_path / f"agg{i}"))).start() for i in range(2)]
    facedetect = build_facedetect(FaceDetectConfig(
        port=0, metrics_port=-1, detector="haar", crop_size=64, max_fps_per_client=0, max_fps_per_peer=0,
        classifier_url="ipv4:" + ",".join(f"127.0.0.1:{p}" for _, p in classifiers),
        aggregator_url="ipv4:" + ",".join(f"127.0.0.1:{a.port}" for a in aggregators))).start()
    try:
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        with grpc.insecure_channel(f"127.0.0.1:{facedetect.port}") as channel:
            stub = pb_grpc.FaceDetectionStub(channel)
            for i in range(12):
                reply = stub.Process(pb.ProcessRequest(frame=pb.Frame(encoded=jpeg), classroom_id="room-lb",
                                                       stream_id="cam", frame_index=i, record=True,
                                                       session_id="lb", timestamp=time.time()), timeout=10)
                assert reply.recorded
        assert all(len(r.requests) >= 3 for r in recorders), [len(r.requests) for r in recorders]
        handled = [a.metrics.registry.get_sample_value("ferlite_aggregator_rpc_handled_total",
                                                       {"method": "RecordEvents", "code": "OK"}) or 0
                   for a in aggregators]
        assert all(h >= 3 for h in handled), handled
    finally:
        facedetect.stop(0)
        for a in aggregators:
            a.stop(0)
        for server, _ in classifiers:
            server.stop(0)
        redis_server.stop()
