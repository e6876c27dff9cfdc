"""Issue 25: nothing to squat and nothing to read on a shared machine.

Last round, on one machine: each Triton (re)start made its Python-backend regions 0644 for
55-177 ms, and another user read face crops through descriptors opened then; a whole crop stayed in
a region after streaming; when the classifier died, another program bound its port within 14 ms and
received 42 crops and the service token; spool, AOF and logs were 0644. Here the local stack runs
(the same `LocalStack` that `ferlite up` starts) while a watcher polls /dev/shm every 5 ms from
before start-up, a crop with a pattern of its own is classified, the classifier is killed and its
port taken by an impostor, and every file of the stack is checked.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import stat
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from skimage import data

from ferlite.app.client import CameraSession
from ferlite.app.stack import StackConfig, free_port_offset
from ferlite.app.up import auth_env, start_stack
from ferlite.base import preprocess
from ferlite.services.common.channels import ChannelSecurity, open_channel
from ferlite.v1 import classifier_pb2, classifier_pb2_grpc, common_pb2
from tests.conftest import TINY_SIZE

REGION_PREFIXES = ("triton_python_backend_shm_region_", "ferlite_classifier_")


def watch_shm(stop: threading.Event, exposed: set[str], seen: set[str]) -> None:
    """Every 5 ms: each region in the shared /dev/shm, and whether group or others may open it."""
    while not stop.is_set():
        for name in os.listdir("/dev/shm"):
            if name.startswith(REGION_PREFIXES):
                seen.add(name)
                try:
                    if os.stat(f"/dev/shm/{name}").st_mode & 0o077:
                        exposed.add(name)
                except FileNotFoundError:
                    pass
        time.sleep(0.005)


def regions_of(pid: int) -> list[Path]:
    """The shared-memory regions `pid` can see: its own /dev/shm (a private one, through /proc) and
    the machine's."""
    folders = {Path("/proc") / str(pid) / "root" / "dev" / "shm", Path("/dev/shm")}  # its root, as it sees it
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir() if p.name.startswith(REGION_PREFIXES)]


def test_no_crop_to_read_and_no_port_to_squat(exported_models, tmp_path) -> None:
    stop, exposed, seen = threading.Event(), set(), set()
    watcher = threading.Thread(target=watch_shm, args=(stop, exposed, seen), daemon=True)
    watcher.start()
    data_dir = tmp_path / "var"
    os.umask(old := os.umask(0o022))  # the usual umask: files are 0644 unless the stack says otherwise
    config = StackConfig.with_port_offset(free_port_offset(), model_dir=exported_models, data_dir=data_dir,
                                          detector="haar",
                                          extra_env=auth_env(argparse.Namespace(auth=True, data_dir=data_dir)))
    stack = start_stack(config)
    try:
        assert stack.shm_prefix, "this machine gives no private /dev/shm (unshare); the stack would fall back"
        camera = ChannelSecurity(token=(data_dir / "camera-token").read_text().strip())
        portrait = data.astronaut()
        import cv2
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(portrait, cv2.COLOR_RGB2BGR))[1].tobytes()
        with CameraSession(f"127.0.0.1:{config.facedetect_port}", "shared-room", "cam-1", security=camera) as cam:
            replies = [cam.process(jpeg) for _ in range(3)]
        assert all(r.recorded for r in replies) and any(r.faces for r in replies)

        # A crop with a pattern no model input has by chance, classified the way face detection does.
        rng = np.random.default_rng(25)
        crop = rng.integers(1, 255, (TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
        service = ChannelSecurity(token=(data_dir / "service-token").read_text().strip())
        with open_channel(f"unix:{stack.socket('classifier')}", service) as channel:
            reply = classifier_pb2_grpc.ClassifierStub(channel).Classify(classifier_pb2.ClassifyRequest(
                crops=[common_pb2.FaceCrop(height=TINY_SIZE, width=TINY_SIZE, channels=3,
                                           dtype=common_pb2.CROP_DTYPE_UINT8, data=crop.tobytes())]), timeout=30)
        assert reply.results
        classifier = next(s for s in stack.services if s.name == "classifier")
        row = preprocess.normalize(crop)[5].astype("<f4").tobytes()  # one row of the crop as the model got it
        raw = crop[5].tobytes()
        regions = regions_of(classifier.proc.pid)
        assert any(p.name.startswith(REGION_PREFIXES[0]) for p in regions)  # Triton's regions are looked at
        holding = [p.name for p in regions if row in p.read_bytes() or raw in p.read_bytes()]
        assert holding == [], f"regions still holding the crop after its call: {holding}"

        # Nothing of the stack can be read by another user: DATA and every folder in it private,
        # the tokens, logs, spool and Redis files this user's only.
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for path in [data_dir / "logs", data_dir / "run", data_dir / "aggregator" / "spool",
                     data_dir / "aggregator" / "redis"]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        for path in [*(data_dir / "logs").iterdir(), *data_dir.glob("*token*")]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

        # The classifier dies; another program takes its TCP port at once. Face detection reaches the
        # classifier on its Unix socket in DATA/run: the impostor gets no call, no crop, no token.
        os.killpg(classifier.proc.pid, signal.SIGKILL)
        classifier.proc.wait()
        impostor = socket.socket()
        impostor.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        impostor.bind(("127.0.0.1", config.classifier_port))
        impostor.listen()
        impostor.settimeout(3.0)
        with CameraSession(f"127.0.0.1:{config.facedetect_port}", "shared-room", "cam-2", security=camera,
                           retries=0) as cam, pytest.raises(grpc.RpcError):
            cam.process(jpeg)
        with pytest.raises(socket.timeout):
            impostor.accept()
        impostor.close()
    finally:
        stack.stop()
        stop.set()
        watcher.join(5)
        os.umask(old)
    assert exposed == set(), f"regions another user could open: {sorted(exposed)}"
