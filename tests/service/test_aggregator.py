"""The aggregator against a real Redis server: idempotency, windows, retention, bad input,
drift, feedback, streaming, embedded Redis, and a kill -9 of Redis with zero loss."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import prometheus_client
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferlite.base.events import Event, InvalidEvent, event_to_pb
from ferlite.base.labels import EMOTIONS
from ferlite.base.model_metadata import ModelMetadata
from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.core import Aggregator, NotFound, Unavailable, anonymous_id
from ferlite.services.aggregator.server import REDIS_HEALTH, build
from ferlite.services.aggregator.spool import Spool
from ferlite.services.aggregator.store import RedisStore
from ferlite.services.common.metrics import ServiceMetrics
from ferlite.v1 import aggregator_pb2 as pb
from ferlite.v1 import aggregator_pb2_grpc as pb_grpc
from tests.support.events import NOW, event
from tests.support.procs import ServiceProcess
from tests.support.redis import start_redis


@pytest.fixture
def redis_server(tmp_path):
    server = start_redis(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def model_dir(tmp_path):
    """A drift reference as `ferlite export` writes it: mostly neutral and happy."""
    ref = [0.05, 0.0, 0.05, 0.3, 0.1, 0.1, 0.4]
    ModelMetadata("mobilenet_v2", 48, reference={"class_distribution": ref, "mean_confidence": 0.8}).save(
        tmp_path / "models" / "mobilenet_v2")
    return tmp_path / "models"


def make_core(redis_server, tmp_path, model_dir, **overrides) -> tuple[Aggregator, ServiceMetrics]:
    config = AggregatorConfig(redis_url=redis_server.url, data_dir=str(tmp_path / "agg"), model_dir=str(model_dir),
                              drift_window=50, **overrides)
    metrics = ServiceMetrics("aggregator")
    client = redis.Redis.from_url(redis_server.url)
    store = RedisStore(client, config.key_prefix, config.retention_seconds, config.stream_maxlen, 50,
                       config.event_marker_seconds)
    return Aggregator(config, store, Spool(tmp_path / "agg" / "spool"), metrics, clock=lambda: NOW), metrics


def test_retried_batches_never_count_twice(redis_server, tmp_path, model_dir) -> None:
    core, _ = make_core(redis_server, tmp_path, model_dir)
    batch = [event(i) for i in range(10)]
    assert core.record(batch).accepted == 10
    again = core.record([*batch[5:], event(10)])
    assert (again.accepted, again.duplicates) == (1, 5)
    summary = core.summary("room-1", 300, NOW + 1)
    assert summary.total == 11 and summary.distribution["happy"] == 11
    assert core.store.event_count("room-1") == 11


def test_window_queries_dominant_and_uncertain_share(redis_server, tmp_path, model_dir) -> None:
    core, _ = make_core(redis_server, tmp_path, model_dir)
    events = ([event(i, "sad", ts=NOW - 3600) for i in range(5)]                  # an hour ago
              + [event(100 + i, "happy", ts=NOW - 90) for i in range(3)]          # two minutes ago
              + [event(200 + i, "surprise", ts=NOW - 10, uncertain=i == 0) for i in range(4)])
    core.record(events)
    recent = core.summary("room-1", 300, NOW)
    assert recent.total == 7
    assert recent.distribution["sad"] == 0 and recent.distribution["surprise"] == 4
    assert recent.dominant == "surprise"
    assert recent.uncertain_share == pytest.approx(1 / 7)
    assert [m.start for m in recent.per_minute] == sorted(m.start for m in recent.per_minute)
    assert sum(sum(m.counts.values()) for m in recent.per_minute) == 7
    assert core.summary("room-1", 7200, NOW).total == 12
    assert core.summary("room-2", 7200, NOW).dominant == ""


def test_summaries_keep_uncertain_faces_apart_per_label_and_name_the_models(redis_server, tmp_path,
                                                                           model_dir) -> None:
    """Issue 28: a teacher's shares count the faces kept (not marked uncertain), per label and per
    minute, and the summary says which architectures labelled the window's faces."""
    core, _ = make_core(redis_server, tmp_path, model_dir)
    core.record([event(i, "happy", ts=NOW - 10, uncertain=i < 2) for i in range(6)]
                + [event(10 + i, "sad", ts=NOW - 70, arch="mobilenet_v3_small") for i in range(3)])
    s = core.summary("room-1", 300, NOW)
    assert s.total == 9 and s.distribution["happy"] == 6 and s.kept["happy"] == 4 and s.kept["sad"] == 3
    assert s.models == {"mobilenet_v2": 6, "mobilenet_v3_small": 3}  # most first
    minutes = {m.start: m for m in s.per_minute}
    latest = minutes[max(minutes)]
    assert latest.counts["happy"] == 6 and latest.kept["happy"] == 4 and latest.uncertain == 2
    assert minutes[min(minutes)].kept["sad"] == 3 and minutes[min(minutes)].uncertain == 0


def test_every_key_expires_within_retention(redis_server, tmp_path, model_dir) -> None:
    core, _ = make_core(redis_server, tmp_path, model_dir, retention_seconds=3600)
    core.record([event(i) for i in range(3)])
    core.feedback("cam-1:0:t0", "sad")
    client = core.store.r
    keys = list(client.scan_iter("ferlite:*"))
    assert len(keys) >= 5
    for key in keys:
        ttl = client.ttl(key)
        assert 0 < ttl <= 3600, (key, ttl)
    with pytest.raises(InvalidEvent, match="older than the retention window"):
        core.record([event(9, ts=NOW - 7200)])


@pytest.mark.parametrize(("mutate", "needle"), [
    (dict(event_id=""), "events[1] (id ''): event_id"),
    (dict(classroom_id=""), "classroom_id is required"),
    (dict(probabilities=(0.5,) * 7), "probabilities sum to 3.5000"),
    (dict(probabilities=(1.0,)), "probabilities has 1 values, expected 7"),
    (dict(label="bored"), "label 'bored' is not one of"),
    (dict(timestamp=NOW + 3600), "timestamp is 3600 s in the future"),
    (dict(timestamp=0.0), "timestamp is required"),
    (dict(confidence=1.5), "confidence must be in [0, 1]"),
    (dict(architecture="resnet"), "model.architecture 'resnet'"),
])
def test_bad_events_reject_the_whole_batch(redis_server, tmp_path, model_dir, mutate, needle) -> None:
    core, _ = make_core(redis_server, tmp_path, model_dir)
    bad = Event(**{**event(1).to_dict(), **mutate})
    with pytest.raises(InvalidEvent) as err:
        core.record([event(0), bad])
    assert needle in str(err.value)
    assert core.store.event_count("room-1") == 0  # the valid first event was not applied either


def test_batch_limits(redis_server, tmp_path, model_dir) -> None:
    core, _ = make_core(redis_server, tmp_path, model_dir, max_batch=4)
    with pytest.raises(InvalidEvent, match="batch is empty"):
        core.record([])
    with pytest.raises(InvalidEvent, match="5 events exceed the limit of 4"):
        core.record([event(i) for i in range(5)])
    with pytest.raises(InvalidEvent, match="repeats within the batch"):
        core.record([event(1), event(1)])


def _gauge(metrics: ServiceMetrics, name: str, **labels) -> float | None:
    return metrics.registry.get_sample_value(f"ferlite_aggregator_{name}", labels)


def test_drift_gauges_move_when_predictions_shift(redis_server, tmp_path, model_dir) -> None:
    core, metrics = make_core(redis_server, tmp_path, model_dir)
    arm = {"architecture": "mobilenet_v2", "model_version": "1"}
    mix = ["neutral"] * 20 + ["happy"] * 15 + ["sad"] * 5 + ["surprise"] * 5 + ["angry", "fear"] * 3
    core.record([event(i, label, confidence=0.8) for i, label in enumerate(mix[:50])])
    core.flush_drift()  # the drift thread's work (not started here)
    calm = _gauge(metrics, "drift_psi", **arm)
    assert calm is not None and calm < 0.1
    core.record([event(1000 + i, "angry", confidence=0.4) for i in range(50)])  # the window is 50
    core.flush_drift()
    shifted = _gauge(metrics, "drift_psi", **arm)
    assert shifted > 1.0 > calm
    assert _gauge(metrics, "drift_js_divergence", **arm) > 0.5
    assert _gauge(metrics, "confidence_mean", **arm) == pytest.approx(0.4)
    assert _gauge(metrics, "confidence_reference", **arm) == pytest.approx(0.8)


def test_feedback_tallies_and_rolling_accuracy(redis_server, tmp_path, model_dir) -> None:
    core, metrics = make_core(redis_server, tmp_path, model_dir)
    core.record([event(i, "happy") for i in range(4)])
    ids = [event(i).event_id for i in range(4)]
    assert core.feedback(ids[0], "happy").correct
    assert not core.feedback(ids[1], "sad").correct
    fb = core.feedback(ids[1], "happy")  # the teacher corrects themselves: no double count
    assert fb.correct and fb.total == 2 and fb.total_correct == 2
    core.feedback(ids[2], "fear")
    arm = {"architecture": "mobilenet_v2", "model_version": "1"}
    assert _gauge(metrics, "feedback_accuracy", **arm) == pytest.approx(2 / 3)
    assert _gauge(metrics, "feedback_events", **arm) == 3
    with pytest.raises(NotFound):
        core.feedback("no-such-event", "happy")
    with pytest.raises(InvalidEvent, match="true_label"):
        core.feedback(ids[0], "meh")


# ------------------------------------------------------------------------------------ through gRPC

@pytest.fixture
def served(redis_server, tmp_path, model_dir):
    config = AggregatorConfig(port=0, metrics_port=-1, redis_url=redis_server.url, data_dir=str(tmp_path / "agg"),
                              model_dir=str(model_dir), replay_interval=0.1)
    server = build(config).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    yield server, pb_grpc.AggregatorStub(channel), channel
    channel.close()
    server.stop(0)


def _live_event(i: int, label: str = "happy") -> pb.EmotionEvent:
    return event_to_pb(event(i, label, ts=time.time()))


def test_grpc_record_summary_feedback_and_errors(served) -> None:
    _, stub, _ = served
    reply = stub.RecordEvents(pb.RecordEventsRequest(events=[_live_event(i) for i in range(3)]))
    assert (reply.accepted, reply.duplicates, reply.spooled) == (3, 0, False)
    summary = stub.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=600))
    assert summary.total_events == 3 and summary.dominant_label == "happy"
    assert [c.label for c in summary.distribution] == list(EMOTIONS)
    fb = stub.SubmitFeedback(pb.FeedbackRequest(event_id=event(0).event_id, true_label="sad"))
    assert not fb.correct and fb.model.architecture == "mobilenet_v2"
    bad = _live_event(7)
    bad.probabilities[0] = 0.9
    with pytest.raises(grpc.RpcError) as err:
        stub.RecordEvents(pb.RecordEventsRequest(events=[bad]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "events[0]" in err.value.details() and "probabilities" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitFeedback(pb.FeedbackRequest(event_id="nope", true_label="sad"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_grpc_stream_delivers_new_events(served) -> None:
    _, stub, _ = served
    # `since`: events stored from this moment on, even before the follower is registered (no sleep
    # standing in for "the stream is open by now").
    stream = stub.StreamEvents(pb.StreamEventsRequest(classroom_id="room-1", since=time.time()), timeout=20)
    received: list[str] = []

    def consume() -> None:
        try:
            for ev in stream:
                received.append(ev.event_id)
                if len(received) == 4:
                    stream.cancel()
        except grpc.RpcError:
            pass

    reader = threading.Thread(target=consume)
    reader.start()
    stub.RecordEvents(pb.RecordEventsRequest(events=[_live_event(i) for i in range(4)]))
    reader.join(15)
    # Stored without the track (store_tracks off, the default): under the hash of the id face detection gave.
    assert received == [anonymous_id(event(i).event_id) for i in range(4)]


def test_redis_killed_mid_stream_loses_and_duplicates_nothing(tmp_path, model_dir) -> None:
    redis_server = start_redis(tmp_path / "redis")
    config = AggregatorConfig(port=0, metrics_port=-1, redis_url=redis_server.url, data_dir=str(tmp_path / "agg"),
                              model_dir=str(model_dir), replay_interval=0.1)
    server = build(config).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.AggregatorStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    sent, spooled_replies = 0, 0
    try:
        for i in range(0, 300, 10):
            batch = [_live_event(j, EMOTIONS[j % 7]) for j in range(i, i + 10)]
            if i == 100:
                redis_server.kill()  # kill -9 in the middle of the stream
            if i == 200:
                redis_server = start_redis(tmp_path / "redis", port=redis_server.port)  # same port, same data
            reply = stub.RecordEvents(pb.RecordEventsRequest(events=batch), timeout=10)
            spooled_replies += reply.spooled
            if i % 50 == 0:  # a client retry of a whole batch, with the same ids
                stub.RecordEvents(pb.RecordEventsRequest(events=batch), timeout=10)
            if i == 150:
                status = health.Check(health_pb2.HealthCheckRequest(service=REDIS_HEALTH)).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING
                assert server.core.spool.depth > 0
            sent += len(batch)
        deadline = time.monotonic() + 20
        while server.core.spool.depth and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.core.spool.depth == 0
        assert spooled_replies >= 10
        summary = stub.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=3600))
        assert summary.total_events == sent == 300
        assert all(c.count == sum(1 for j in range(300) if EMOTIONS[j % 7] == c.label) for c in summary.distribution)
        assert server.core.store.event_count("room-1") == 300
        status = health.Check(health_pb2.HealthCheckRequest(service=REDIS_HEALTH)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
        server.stop(0)
        redis_server.stop()


def test_embedded_redis_persists_across_restarts(tmp_path, model_dir) -> None:
    config = AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), model_dir=str(model_dir))
    for round_ in range(2):
        server = build(config).start()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AggregatorStub(channel)
            stub.RecordEvents(pb.RecordEventsRequest(events=[_live_event(i + 10 * round_) for i in range(5)]))
            total = stub.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=600)).total_events
        server.stop(0)
        assert total == 5 * (round_ + 1)
    assert (tmp_path / "agg" / "redis" / "appendonly.aof").exists()
    assert not (tmp_path / "agg" / "redis" / "redis.sock").exists()


@pytest.mark.parametrize(("call", "needle"), [
    (lambda s: s.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=math.nan), timeout=5),
     "window_seconds"),
    (lambda s: s.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=math.inf), timeout=5),
     "window_seconds"),
    (lambda s: s.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=60, end_time=1e20), timeout=5),
     "end_time"),
    (lambda s: next(iter(s.StreamEvents(pb.StreamEventsRequest(classroom_id="room-1", since=1e20), timeout=5))),
     "since"),
    (lambda s: s.GetSummary(pb.SummaryRequest(classroom_id="room\n", window_seconds=60), timeout=5), "classroom_id"),
    (lambda s: s.SubmitFeedback(pb.FeedbackRequest(event_id="x" * 1_000_000, true_label="sad"), timeout=5),
     "event_id"),
])
def test_bad_numbers_in_reads_are_invalid_argument_and_redis_stays_up(served, call, needle) -> None:
    _, stub, channel = served
    with pytest.raises(grpc.RpcError) as err:
        call(stub)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert needle in err.value.details() and len(err.value.details()) < 400
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=REDIS_HEALTH), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reply = stub.RecordEvents(pb.RecordEventsRequest(events=[_live_event(50)]), timeout=5)
    assert not reply.spooled


def test_forged_events_cannot_grow_the_metrics(redis_server, tmp_path, model_dir) -> None:
    """20 batches of fresh classrooms and model versions: /metrics keeps the same series."""
    core, metrics = make_core(redis_server, tmp_path, model_dir)
    core.record([event(0, "happy", ts=NOW)])
    before = sum(len(m.samples) for m in metrics.registry.collect())
    for b in range(20):
        batch = [dataclasses.replace(event(1000 + 50 * b + i, "sad", ts=NOW, classroom=f"forged-{b}-{i}"),
                                     model_version=f"v{b}-{i}") for i in range(50)]
        core.record(batch)
    after = sum(len(m.samples) for m in metrics.registry.collect())
    assert after - before < 40, (before, after)
    text = prometheus_client.generate_latest(metrics.registry).decode()
    assert "forged-" not in text and 'model_version="v1-' not in text


def test_embedded_redis_killed_is_restarted_and_the_spool_drains(tmp_path, model_dir) -> None:
    config = AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), model_dir=str(model_dir),
                              replay_interval=0.1)
    server = build(config).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AggregatorStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            stub.RecordEvents(pb.RecordEventsRequest(events=[_live_event(i) for i in range(5)]))
            redis_pid = next(int(p) for p in subprocess.run(["pgrep", "-f", str(tmp_path / "agg" / "redis")],
                                                            capture_output=True, text=True).stdout.split())
            os.kill(redis_pid, signal.SIGKILL)
            killed = time.monotonic()
            acked = 5
            for i in range(5, 25):  # acknowledged during the outage: spooled or stored, never lost
                stub.RecordEvents(pb.RecordEventsRequest(events=[_live_event(i)]), timeout=5)
                acked += 1
                time.sleep(0.05)
            while health.Check(health_pb2.HealthCheckRequest(service=REDIS_HEALTH), timeout=2).status != \
                    health_pb2.HealthCheckResponse.SERVING or server.core.spool.depth:
                assert time.monotonic() - killed < 10, "Redis not back (or spool not drained) within 10 s"
                time.sleep(0.1)
            total = stub.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=600)).total_events
        assert total == acked
        assert server.metrics.registry.get_sample_value("ferlite_aggregator_embedded_redis_restarts_total") >= 1
        zombies = subprocess.run(["ps", "-o", "stat=", "-p", str(redis_pid)], capture_output=True, text=True)
        assert "Z" not in zombies.stdout
    finally:
        server.stop(0)


def test_an_id_reused_for_a_different_event_is_an_error_not_a_duplicate(served) -> None:
    _, stub, _ = served
    first = _live_event(70)
    assert stub.RecordEvents(pb.RecordEventsRequest(events=[first])).accepted == 1
    assert stub.RecordEvents(pb.RecordEventsRequest(events=[first])).duplicates == 1   # a retry: fine
    other = _live_event(71)
    forged = event_to_pb(dataclasses.replace(event(70, "sad", ts=time.time()), classroom_id="room-2"))
    with pytest.raises(grpc.RpcError) as err:
        stub.RecordEvents(pb.RecordEventsRequest(events=[other, forged]))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "events[1]" in err.value.details() and "different event" in err.value.details()
    assert stub.GetSummary(pb.SummaryRequest(classroom_id="room-1", window_seconds=600)).total_events == 1
    assert stub.GetSummary(pb.SummaryRequest(classroom_id="room-2", window_seconds=600)).total_events == 0


def test_event_markers_expire_long_before_the_aggregates(redis_server, tmp_path, model_dir) -> None:
    core, _ = make_core(redis_server, tmp_path, model_dir, event_marker_seconds=3600)
    core.record([event(1, "happy")])
    r = core.store.r
    marker = r.ttl(f"ferlite:event:{anonymous_id(event(1).event_id)}")
    stream = r.ttl("ferlite:stream:room-1")
    assert 0 < marker <= 3600 < stream


def test_stop_drains_the_spool_or_keeps_it_for_the_next_start(tmp_path, model_dir) -> None:
    """The core's stop (what SIGTERM runs; the real signal is tested below): events acknowledged as
    spooled during a Redis outage are handed to Redis when the aggregator stops if Redis is back, and
    otherwise survive on the spool's volume and are replayed by the next aggregator started on it."""
    server = start_redis(tmp_path / "redis")
    core, _ = make_core(server, tmp_path, model_dir)
    server.kill()
    first = [event(i, ts=NOW - 10) for i in range(5)]
    assert core.record(first).spooled and core.spool.depth == 5
    server = start_redis(tmp_path / "redis", port=server.port)
    core.stop()  # the SIGTERM path: Redis answers again, so the spool is handed over
    assert core.spool.depth == 0 and core.store.event_count("room-1") == 5
    server.kill()  # a second outage, and this time the pod goes away while Redis is still down
    core, _ = make_core(server, tmp_path, model_dir)
    second = [event(i, ts=NOW - 5) for i in range(5, 8)]
    assert core.record(second).spooled
    core.stop()
    assert core.spool.depth == 3  # kept on disk, not dropped
    server = start_redis(tmp_path / "redis", port=server.port)
    try:
        again, _ = make_core(server, tmp_path, model_dir)  # same data dir: the pod's own claim
        assert again.spool.depth == 3
        again.replay_pending()
        assert again.spool.depth == 0 and again.store.event_count("room-1") == 8
    finally:
        server.stop()


def test_redis_memory_is_exported_for_the_sizing_alert(redis_server, tmp_path, model_dir) -> None:
    core, metrics = make_core(redis_server, tmp_path, model_dir)
    core.record([event(i, ts=NOW) for i in range(20)])
    core._watch_memory()
    used = metrics.registry.get_sample_value("ferlite_aggregator_redis_memory_used_bytes")
    assert used is not None and used > 100_000  # a real Redis's used_memory, not a default
    assert metrics.registry.get_sample_value("ferlite_aggregator_redis_memory_max_bytes") is not None


def test_recording_never_waits_for_the_drift_window(redis_server, tmp_path, model_dir) -> None:
    """The drift window is a statistic: RecordEvents returns once the events are stored, while the
    window's Redis update (held up here) happens on the drift thread and lands afterwards."""
    core, metrics = make_core(redis_server, tmp_path, model_dir)
    arm = {"architecture": "mobilenet_v2", "model_version": "1"}
    release, pushing = threading.Event(), threading.Event()
    real_push = core.store.push_drift

    def held_push(added, size):
        pushing.set()
        assert release.wait(10)
        return real_push(added, size)

    core.store.push_drift = held_push
    core.start()
    try:
        assert core.record([event(i, "angry", confidence=0.4) for i in range(5)]).accepted == 5
        assert pushing.wait(5)  # the drift thread is inside the (held) Redis update...
        assert core.record([event(10 + i, "happy") for i in range(3)]).accepted == 3  # ...and recording goes on
        assert core.store.event_count("room-1") == 8
        assert _gauge(metrics, "drift_window_events", **arm) is None
        release.set()
        deadline = time.monotonic() + 5
        while _gauge(metrics, "drift_window_events", **arm) != 8 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _gauge(metrics, "drift_window_events", **arm) == 8  # both batches, in one window
    finally:
        release.set()
        core.stop()


def test_every_replica_reports_the_same_drift_and_feedback_figures(redis_server, tmp_path, model_dir) -> None:
    """Two aggregator replicas on one Redis: events stored by one and feedback taken by the other
    show in both replicas' gauges, identically (the windows live in Redis, not in a process)."""
    a, metrics_a = make_core(redis_server, tmp_path / "a", model_dir)
    b, metrics_b = make_core(redis_server, tmp_path / "b", model_dir)
    arm = {"architecture": "mobilenet_v2", "model_version": "1"}
    a.record([event(i, "angry", confidence=0.4) for i in range(30)])
    b.record([event(100 + i, "neutral", confidence=0.9) for i in range(20)])
    assert b.feedback(event(0).event_id, "angry").correct
    assert not b.feedback(event(1).event_id, "sad").correct
    a.flush_drift()
    b.flush_drift()
    a.refresh_drift()
    b.refresh_drift()
    for name in ("drift_psi", "drift_js_divergence", "confidence_mean", "drift_window_events",
                 "feedback_accuracy", "feedback_events"):
        assert _gauge(metrics_a, name, **arm) == pytest.approx(_gauge(metrics_b, name, **arm)), name
    assert _gauge(metrics_a, "drift_window_events", **arm) == 50  # both replicas' events, one window
    assert _gauge(metrics_a, "confidence_mean", **arm) == pytest.approx((30 * 0.4 + 20 * 0.9) / 50)
    assert _gauge(metrics_a, "feedback_accuracy", **arm) == pytest.approx(0.5)  # given to b, seen by a


def _spool_files(tmp_path) -> list:
    return sorted((tmp_path / "agg" / "spool").glob("*.json"))


def test_a_damaged_spool_file_is_moved_aside_and_the_rest_replays(tmp_path, model_dir) -> None:
    """Issue 25: one spool file truncated during an outage. Its batch cannot be replayed; it is moved
    to corrupt/ (named in the log, counted), the batches after it are stored, and recording goes
    straight to Redis again afterwards instead of queueing behind the damaged file forever."""
    server = start_redis(tmp_path / "redis")
    core, metrics = make_core(server, tmp_path, model_dir)
    server.kill()
    for b in range(3):
        assert core.record([event(10 * b + i, ts=NOW - 10) for i in range(5)]).spooled
    first = _spool_files(tmp_path)[0]
    first.write_bytes(first.read_bytes()[:40])  # truncated on disk
    server = start_redis(tmp_path / "redis", port=server.port)
    try:
        assert core.replay_pending() == 10
        assert core.spool.depth == 0 and core.store.event_count("room-1") == 10
        assert (tmp_path / "agg" / "spool" / "corrupt" / first.name).exists()
        assert metrics.registry.get_sample_value("ferlite_aggregator_spool_corrupt_files_total") == 1
        assert not core.record([event(99, ts=NOW - 5)]).spooled  # stored directly again
    finally:
        server.stop()


def test_start_up_with_a_damaged_spool_file_serves_and_replays_the_rest(tmp_path, model_dir, caplog) -> None:
    server = start_redis(tmp_path / "redis")
    core, _ = make_core(server, tmp_path, model_dir)
    server.kill()
    assert core.record([event(i, ts=NOW - 10) for i in range(4)]).spooled
    assert core.record([event(i, ts=NOW - 10) for i in range(4, 6)]).spooled
    core.stop()
    bad = _spool_files(tmp_path)[1]
    bad.write_bytes(bad.read_bytes().replace(b"room-1", b"room-X"))  # same length, checksum wrong
    server = start_redis(tmp_path / "redis", port=server.port)
    try:
        with caplog.at_level("ERROR", logger="ferlite.aggregator.spool"):
            again, metrics = make_core(server, tmp_path, model_dir)  # no crash loop at start
        assert any(bad.name in str(getattr(r, "file", "")) for r in caplog.records)
        assert again.spool.depth == 4
        assert metrics.registry.get_sample_value("ferlite_aggregator_spool_corrupt_files_total") == 1
        again.replay_pending()
        assert again.store.event_count("room-1") == 4 and again.store.event_count("room-X") == 0
    finally:
        server.stop()


def test_the_replay_worker_survives_an_unexpected_error_and_reports_itself(tmp_path, model_dir) -> None:
    server = start_redis(tmp_path / "redis")
    core, metrics = make_core(server, tmp_path, model_dir, replay_interval=0.05)
    states: list[bool] = []
    core.on_replayer_state = states.append
    real, failures = core.store.record, []

    def flaky(events):
        if not failures:  # the first replay attempt meets a bug, not an outage
            failures.append(1)
            raise RuntimeError("unexpected")
        return real(events)

    server.kill()
    assert core.record([event(i, ts=NOW - 10) for i in range(3)]).spooled
    server = start_redis(tmp_path / "redis", port=server.port)
    core.store.record = flaky
    core.start()
    try:
        deadline = time.monotonic() + 10
        while core.spool.depth and time.monotonic() < deadline:
            time.sleep(0.05)
        assert core.spool.depth == 0 and core.store.event_count("room-1") == 3
        assert metrics.registry.get_sample_value("ferlite_aggregator_spool_replay_errors_total") == 1
        time.sleep(1.2)  # the watcher reports at least once a second
        assert states and states[-1] is True
        assert metrics.registry.get_sample_value("ferlite_aggregator_spool_replayer_running") == 1
    finally:
        core.stop()
        server.stop()


def test_spool_files_are_the_owners_only(tmp_path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([event(1)])
    assert (tmp_path / "spool").stat().st_mode & 0o077 == 0
    for f in (tmp_path / "spool").iterdir():
        assert f.stat().st_mode & 0o077 == 0, f


def test_a_batch_the_spool_cannot_write_is_refused_not_acknowledged(tmp_path, model_dir) -> None:
    server = start_redis(tmp_path / "redis")
    core, _ = make_core(server, tmp_path, model_dir)
    server.kill()

    def disk_full(events):
        raise OSError(28, "No space left on device")

    core.spool.append = disk_full
    with pytest.raises(Unavailable, match="NOT recorded"):
        core.record([event(1, ts=NOW - 10)])
    assert core.spool.depth == 0


def test_sigterm_on_a_real_aggregator_process_drains_its_spool(tmp_path) -> None:
    """A real `ferlite serve aggregator` process and a real SIGTERM. Its replay worker is slowed to
    once an hour, so only the drain on SIGTERM can hand the spooled events to Redis: with Redis back,
    SIGTERM stores them and the process exits 0 with an empty spool; with Redis still away, they stay
    on disk and the next process on the same folder replays them."""
    redis_dir, data_dir = tmp_path / "redis", tmp_path / "agg"
    server = start_redis(redis_dir)

    def aggregator() -> ServiceProcess:
        return ServiceProcess([sys.executable, "-m", "ferlite", "serve", "aggregator", "--port", "0",
                               "--metrics-port", "-1", "--data-dir", str(data_dir), "--model-dir", str(data_dir),
                               "--redis-url", server.url, "--replay-interval", "3600"]).start()

    def record(service: ServiceProcess, ids: range) -> list[bool]:
        with grpc.insecure_channel(service.target) as channel:
            stub = pb_grpc.AggregatorStub(channel)
            return [stub.RecordEvents(pb.RecordEventsRequest(events=[event_to_pb(event(i, ts=time.time()))]),
                                      timeout=10).spooled for i in ids]

    service = aggregator()
    try:
        server.kill()
        assert all(record(service, range(0, 6)))  # acknowledged as spooled
        server = start_redis(redis_dir, port=server.port)
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(30) == 0
        client = redis.Redis.from_url(server.url)
        assert client.xlen("ferlite:stream:room-1") == 6
        assert list((data_dir / "spool").glob("*.json")) == []
        server.kill()  # a second outage, and this time SIGTERM comes while Redis is still away
        service = aggregator()
        assert all(record(service, range(6, 9)))
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(30) == 0
        assert len(list((data_dir / "spool").glob("*.json"))) == 3  # kept on the volume, not dropped
        server = start_redis(redis_dir, port=server.port)
        service = aggregator()  # the next start on the same folder replays them (its drain, here)
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(30) == 0
        client = redis.Redis.from_url(server.url)
        assert client.xlen("ferlite:stream:room-1") == 9
    finally:
        service.stop()
        server.stop()


def test_the_embedded_redis_is_bounded_and_private(tmp_path) -> None:
    """Issue 25: the local Redis had no memory limit (one camera token grew it 1 -> 97 MB) and its
    files were 0644 in 0755 folders. Now maxmemory with noeviction, a 0700 folder, 0600 files."""
    from ferlite.services.aggregator.embedded import EmbeddedRedis

    server = EmbeddedRedis(tmp_path / "redis", maxmemory="64mb").start()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("maxmemory")["maxmemory"] == str(64 * 2**20)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        client.set("k", "v")
        client.close()
        assert (tmp_path / "redis").stat().st_mode & 0o077 == 0
        files = [p for p in (tmp_path / "redis").rglob("*") if p.is_file()]
        assert files and all(p.stat().st_mode & 0o077 == 0 for p in files), [(p.name, oct(p.stat().st_mode))
                                                                            for p in files]
    finally:
        server.stop()
