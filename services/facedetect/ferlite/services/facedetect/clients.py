"""gRPC clients of the pipeline's downstream services, as the async callables `pipeline` expects.

They are grpc.aio clients awaited on face detection's own event loop: a frame's classify and
record calls cost no thread and no hand-off between threads (a blocking client inside a grpc.aio
server cost about 0.5 ms per call). Each opens its channel on the loop of its first call.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
import numpy as np
from grpc import aio

from ferlite.base.events import Event, event_to_pb
from ferlite.services.common.channels import ChannelSecurity, open_aio_channel
from ferlite.services.common.security import token_metadata
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc, classifier_pb2, classifier_pb2_grpc, common_pb2

from .pipeline import ClassifierAnswer

log = logging.getLogger("ferlite.facedetect.clients")


class DownstreamError(RuntimeError):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Peer:
    """One downstream service: its channel and stub (made lazily, on the calling loop) and credentials."""

    STUB: Any = None

    def __init__(self, target: str, security: ChannelSecurity | None) -> None:
        self.target, self.security = target, security
        self.metadata = tuple(token_metadata(security.token if security else ""))
        self.channel: aio.Channel | None = None
        self._stub: Any = None

    def stub(self) -> Any:
        if self.channel is None:
            self.channel = open_aio_channel(self.target, self.security)
            self._stub = self.STUB(self.channel)
        return self._stub

    async def close(self) -> None:
        if self.channel is not None:
            channel, self.channel = self.channel, None
            await channel.close()


class ClassifierClient(_Peer):
    STUB = classifier_pb2_grpc.ClassifierStub

    async def __call__(self, crops: np.ndarray, routing_key: str, timeout: float) -> ClassifierAnswer:
        _n, h, w, c = crops.shape
        if crops.dtype == np.uint8:
            dtype, wire = common_pb2.CROP_DTYPE_UINT8, np.uint8
        else:
            dtype, wire = common_pb2.CROP_DTYPE_FLOAT32, np.dtype("<f4")
        request = classifier_pb2.ClassifyRequest(routing_key=routing_key, crops=[
            common_pb2.FaceCrop(height=h, width=w, channels=c, dtype=dtype,
                                data=np.ascontiguousarray(crop, dtype=wire).tobytes()) for crop in crops])
        try:
            reply = await self.stub().Classify(request, timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            raise DownstreamError(exc.code(), f"classifier: {exc.details()}") from None
        probs = np.array([list(r.probabilities) for r in reply.results], dtype=np.float64)
        uncertain = np.array([r.uncertain for r in reply.results], dtype=bool)
        return ClassifierAnswer(probs, reply.model.architecture, reply.model.model_version, uncertain)


class AggregatorClient(_Peer):
    STUB = aggregator_pb2_grpc.AggregatorStub

    async def __call__(self, events: list[Event], timeout: float) -> bool:
        """True when the aggregator stored or durably spooled the events; False if unreachable
        (the frame's labels still go back to the client, which may retry with the same ids)."""
        try:
            await self.stub().RecordEvents(aggregator_pb2.RecordEventsRequest(events=[event_to_pb(e) for e in events]),
                                    timeout=timeout, metadata=self.metadata)
        except grpc.RpcError as exc:
            log.warning("events not recorded", extra={"code": exc.code().name, "events": len(events)})
            return False
        return True
