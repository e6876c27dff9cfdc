"""Test doubles of the classifier service (gRPC servers with scripted answers), for face detection's
tests: they let a test see exactly what face detection sends and decide what it gets back."""

from __future__ import annotations

from concurrent import futures

import grpc

from ferlite.v1 import classifier_pb2, classifier_pb2_grpc, common_pb2


class RecordingClassifier(classifier_pb2_grpc.ClassifierServicer):
    """Keeps what face detection sends, answers a fixed distribution."""

    def __init__(self) -> None:
        self.requests: list[classifier_pb2.ClassifyRequest] = []

    def Classify(self, request, context):
        self.requests.append(request)
        probs = [0.1, 0.05, 0.05, 0.5, 0.1, 0.1, 0.1]
        return classifier_pb2.ClassifyResponse(
            results=[common_pb2.Classification(probabilities=probs, label="happy", confidence=0.5)
                     for _ in request.crops],
            model=common_pb2.ModelRef(architecture="mobilenet_v2", model_version="1"))


def serve_classifier(servicer: classifier_pb2_grpc.ClassifierServicer) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    classifier_pb2_grpc.add_ClassifierServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port
