"""Issue 28 (privacy by default): stored events carry no face box and no track id unless a deployment
opts in (store_tracks), and the id they are kept under, which named the track (stream:run:frame:track),
is replaced by its hash. Retries still count once and teacher feedback still finds its event by the
id the camera was given; with store_tracks on, everything is kept as sent."""

from __future__ import annotations

import json
import time

import grpc

from ferlite.base.events import event_to_pb
from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import build
from ferlite.services.common.security import token_metadata
from ferlite.v1 import aggregator_pb2 as apb
from ferlite.v1 import aggregator_pb2_grpc as apb_grpc
from tests.support.events import event

ADMIN = "admin-token-for-privacy-tests"


def stored(tmp_path, store_tracks: bool) -> tuple[list[dict], list[dict], int, bool]:
    server = build(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / f"agg-{store_tracks}"),
                                    auth_token=ADMIN, store_tracks=store_tracks)).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = apb_grpc.AggregatorStub(channel)
            batch = apb.RecordEventsRequest(events=[event_to_pb(event(i, ts=time.time())) for i in range(6)])
            first = stub.RecordEvents(batch, timeout=10)
            again = stub.RecordEvents(batch, timeout=10)  # a retry: nothing counted twice
            feedback = stub.SubmitFeedback(apb.FeedbackRequest(event_id=event(2).event_id, true_label="sad"),
                                           metadata=token_metadata(ADMIN), timeout=10)
            r = server.core.store.r
            entries = [json.loads(f[b"event"]) for _, f in r.xrange("ferlite:stream:room-1")]
            markers = [{k.decode(): v.decode() for k, v in r.hgetall(key).items()}
                       for key in r.scan_iter(match="ferlite:event:*")]
            return entries, markers, first.accepted + again.accepted, feedback.model.architecture != ""
    finally:
        server.stop(0)


def test_by_default_nothing_stored_ties_an_event_to_a_seat(tmp_path) -> None:
    entries, markers, accepted, feedback_found = stored(tmp_path, store_tracks=False)
    assert accepted == 6 and feedback_found and len(entries) == 6 and len(markers) == 6
    for e in entries:
        assert e["track_id"] == "" and e["box"] == [0.0, 0.0, 0.0, 0.0]
        assert e["event_id"].startswith("h:") and "t0" not in e["event_id"] and "cam-1" not in e["event_id"]
        assert e["label"] and e["probabilities"] and e["classroom_id"] == "room-1"  # what the use needs
    assert all(m["track"] == "" for m in markers)


def test_a_deployment_may_opt_in_to_tracks(tmp_path) -> None:
    entries, markers, accepted, feedback_found = stored(tmp_path, store_tracks=True)
    assert accepted == 6 and feedback_found and all(m["track"] for m in markers)
    assert {e["event_id"] for e in entries} == {event(i).event_id for i in range(6)}
    assert all(e["track_id"] and e["box"] != [0.0, 0.0, 0.0, 0.0] for e in entries)
