"""TritonBackend's ready set and the health watcher, with a scripted Triton client (a test double
of tritonclient's InferenceServerClient: no Triton can be killed on cue in a unit test)."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from ferlite.services.classifier.backend import BackendUnavailable, TritonBackend


class DeadTriton:
    """Answers like a Triton that has just died: every call fails UNAVAILABLE."""

    def is_server_live(self, client_timeout=None) -> bool:
        raise InferenceServerException("failed to connect", status="StatusCode.UNAVAILABLE")

    def get_model_config(self, *args, **kwargs):
        raise InferenceServerException("failed to connect", status="StatusCode.UNAVAILABLE")

    def infer(self, *args, **kwargs):
        raise InferenceServerException("failed to connect", status="StatusCode.UNAVAILABLE")

    def close(self) -> None:
        pass


def test_a_failed_inference_tells_the_health_watcher_at_once() -> None:
    changes: list[set[str]] = []
    backend = TritonBackend("127.0.0.1:9", ["mobilenet_v2", "efficientnet_b0"], on_change=changes.append)
    backend.client = DeadTriton()
    backend._set_ready({"mobilenet_v2", "efficientnet_b0"})
    changes.clear()
    with pytest.raises(BackendUnavailable):
        backend.infer("mobilenet_v2", np.zeros((1, 32, 32, 3), np.float32), timeout=1)
    assert changes == [{"efficientnet_b0"}]
    backend.check()          # the poll that follows also sees Triton down: health hears it once more
    assert changes[-1] == set()
