"""gRPC clients of the pipeline's downstream services, as the plain callables `pipeline` expects."""

from __future__ import annotations

import logging

import grpc
import numpy as np

from ferlite.base.events import Event, event_to_pb
from ferlite.services.common.channels import ChannelSecurity, open_channel
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc, classifier_pb2, classifier_pb2_grpc, common_pb2

from .pipeline import ClassifierAnswer

log = logging.getLogger("ferlite.facedetect.clients")


class DownstreamError(RuntimeError):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ClassifierClient:
    def __init__(self, target: str, security: ChannelSecurity | None = None) -> None:
        self.channel = open_channel(target, security)
        self.stub = classifier_pb2_grpc.ClassifierStub(self.channel)

    def __call__(self, crops: np.ndarray, routing_key: str, timeout: float) -> ClassifierAnswer:
        _n, h, w, c = crops.shape
        if crops.dtype == np.uint8:
            dtype, wire = common_pb2.CROP_DTYPE_UINT8, np.uint8
        else:
            dtype, wire = common_pb2.CROP_DTYPE_FLOAT32, np.dtype("<f4")
        request = classifier_pb2.ClassifyRequest(routing_key=routing_key, crops=[
            common_pb2.FaceCrop(height=h, width=w, channels=c, dtype=dtype,
                                data=np.ascontiguousarray(crop, dtype=wire).tobytes()) for crop in crops])
        try:
            reply = self.stub.Classify(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise DownstreamError(exc.code(), f"classifier: {exc.details()}") from None
        probs = np.array([list(r.probabilities) for r in reply.results], dtype=np.float64)
        uncertain = np.array([r.uncertain for r in reply.results], dtype=bool)
        return ClassifierAnswer(probs, reply.model.architecture, reply.model.model_version, uncertain)

    def close(self) -> None:
        self.channel.close()


class AggregatorClient:
    def __init__(self, target: str, security: ChannelSecurity | None = None) -> None:
        self.channel = open_channel(target, security)
        self.stub = aggregator_pb2_grpc.AggregatorStub(self.channel)

    def __call__(self, events: list[Event], timeout: float) -> bool:
        """True when the aggregator stored or durably spooled the events; False if unreachable
        (the frame's labels still go back to the client, which may retry with the same ids)."""
        try:
            self.stub.RecordEvents(aggregator_pb2.RecordEventsRequest(events=[event_to_pb(e) for e in events]),
                                   timeout=timeout)
        except grpc.RpcError as exc:
            log.warning("events not recorded", extra={"code": exc.code().name, "events": len(events)})
            return False
        return True

    def close(self) -> None:
        self.channel.close()
