"""The aggregator's logic, free of gRPC: record (with spool on outage), summary, follow, feedback."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from ferlite.base.event_rules import ID_RULE, NAME_RULE, is_id, is_name
from ferlite.base.events import Event, InvalidEvent, validate_batch
from ferlite.base.labels import EMOTIONS
from ferlite.services.common.metrics import ServiceMetrics

from .config import AggregatorConfig
from .drift import DriftMonitor
from .spool import Spool
from .store import EventConflict, Feedback, RedisStore, Summary

log = logging.getLogger("ferlite.aggregator")


def anonymous_id(event_id: str) -> str:
    """The id an event is kept under without its track: a hash of the id the camera was given (the
    same id always gives the same hash, so retries and feedback still find it)."""
    return "h:" + hashlib.blake2b(event_id.encode(), digest_size=12).hexdigest()


class SpoolNotEmpty(RuntimeError):
    """An erase while events wait in the spool."""


class Unavailable(RuntimeError):
    """Redis cannot be reached for a read; writes are spooled instead."""


class NotFound(KeyError):
    pass


@dataclass(frozen=True)
class RecordResult:
    accepted: int
    duplicates: int
    spooled: bool


class Aggregator:
    def __init__(self, config: AggregatorConfig, store: RedisStore, spool: Spool, metrics: ServiceMetrics,
                 on_redis_state: Callable[[bool], None] = lambda up: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.spool = spool
        self.clock = clock
        self.drift = DriftMonitor(metrics, config.model_dir, config.drift_window)
        self.on_redis_state = on_redis_state
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._replayer: threading.Thread | None = None
        # Drift items of stored events wait here for the drift thread (see flush_drift).
        self._drift_lock = threading.Lock()
        self._drift_pending: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self._drift_ready = threading.Event()
        self._drift_thread: threading.Thread | None = None
        self._redis_up = True
        self._redis_full = False
        self.on_redis_full: Callable[[bool], None] = lambda full: None
        self.g_redis_full = metrics.gauge("redis_full", "1 while Redis refuses writes at its maxmemory (noeviction): "
                                          "it answers, but events are spooled; 0 otherwise.")
        self.g_spool_bytes = metrics.gauge("spool_bytes", "Bytes of the spool on disk (refused past spool_max_mb).")
        metrics.gauge("spool_max_bytes", "The spool's size limit (spool_max_mb), for the nearly-full alert.").set(
            spool.max_bytes)
        self.g_spool = metrics.gauge("spool_events", "Events spooled on disk waiting for Redis.")
        self.g_redis = metrics.gauge("redis_up", "1 when Redis answers, 0 during an outage.")
        self.g_redis_used = metrics.gauge("redis_memory_used_bytes", "Redis used_memory (INFO memory).")
        self.g_redis_max = metrics.gauge("redis_memory_max_bytes", "Redis maxmemory; 0 means no limit.")
        self.c_recorded = metrics.counter("events_recorded_total", "Events by outcome: stored, duplicate "
                                          "(a retry, not counted again), spooled, replayed.", ["outcome"])
        self.c_corrupt = metrics.counter("spool_corrupt_files_total", "Spool files that failed their checksum "
                                         "or could not be parsed, moved to the spool's corrupt/ folder.")
        self.c_replay_errors = metrics.counter("spool_replay_errors_total", "Unexpected errors of the spool's "
                                               "replay worker (it logs each one and carries on).")
        self.g_replayer = metrics.gauge("spool_replayer_running", "1 while the spool's replay worker runs.")
        self.on_replayer_state: Callable[[bool], None] = lambda running: None
        self.c_corrupt.inc(spool.corrupt_files)  # found at start-up, before this counter existed
        spool.on_corrupt = lambda path: self.c_corrupt.inc()
        self.g_spool.set(spool.depth)
        self.g_redis.set(1)

    # ------------------------------------------------------------------ state
    def _set_full(self, full: bool) -> None:
        if full != self._redis_full:
            if full:
                log.error("redis is full (maxmemory, noeviction): it refuses writes; spooling events to disk. "
                          "Raise maxmemory or shorten retention_seconds")
            else:
                log.warning("redis takes writes again")
            self._redis_full = full
            self.on_redis_full(full)
        self.g_redis_full.set(1 if full else 0)

    def _report_spool(self) -> None:
        self.g_spool.set(self.spool.depth)
        self.g_spool_bytes.set(self.spool.bytes)

    def _redis_failed(self, exc: redis.RedisError) -> None:
        """A write failed: Redis full (it answered OOM: up, but refusing writes) or Redis away."""
        # redis-py raises OutOfMemoryError for an "OOM ..." answer (from a script too, wrapped in its text)
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or (
                isinstance(exc, redis.ResponseError) and ("OOM" in str(exc) or "maxmemory" in str(exc))):
            self._set_redis(True)
            self._set_full(True)
        else:
            self._set_redis(False)

    def _set_redis(self, up: bool) -> None:
        if up != self._redis_up:
            log.warning("redis %s", "is back" if up else "is unreachable: spooling events to disk")
            self._redis_up = up
            self.on_redis_state(up)
        self.g_redis.set(1 if up else 0)

    # ----------------------------------------------------------------- writes
    def stored_form(self, event: Event) -> Event:
        """What is kept of an event. By default (store_tracks off) no face box and no track id, and the id,
        which names the track (stream:run:frame:track), replaced by its hash: retries still find their
        marker and teacher feedback its event (by the id the camera was given), but no stored event can
        be tied to a seat or followed across frames."""
        if self.config.store_tracks:
            return event
        return dataclasses.replace(event, event_id=anonymous_id(event.event_id), track_id="", box=(0.0, 0.0, 0.0, 0.0))

    def record(self, events: list[Event]) -> RecordResult:
        cfg = self.config
        validate_batch(events, self.clock(), cfg.max_batch, cfg.max_future_seconds, cfg.retention_seconds)
        events = [self.stored_form(e) for e in events]
        with self._lock:
            if self.spool.depth == 0:  # keep order: once spooling, later batches queue behind
                try:
                    flags = self.store.record(events)
                except redis.RedisError as exc:
                    self._redis_failed(exc)
                else:
                    self._set_redis(True)
                    self._set_full(False)
                    return self._stored(events, flags, "stored")
            try:  # acknowledged as spooled only once the batch is durably on disk
                self.spool.append(events)
            except OSError as exc:
                why = "full" if self._redis_full else "unreachable"
                log.error(f"cannot spool a batch while Redis is {why}", extra={"error": exc.strerror})
                raise Unavailable(f"Redis is {why} and the spool cannot take the batch ({exc.strerror}); "
                                  "the batch was NOT recorded: send it again") from None
            self._report_spool()
            self.c_recorded.labels("spooled").inc(len(events))
            return RecordResult(0, 0, True)

    def _record_replayed(self, events: list[Event]) -> tuple[list[Event], list[bool]]:
        """Store a spooled batch; events that conflict with stored ones are dropped (logged, counted):
        the batch was acknowledged already, and one bad event must not block the spool forever."""
        while True:
            try:
                return events, self.store.record(events)
            except EventConflict as exc:
                log.error("spooled event conflicts with a stored one; dropped", extra={"error": str(exc)})
                self.c_recorded.labels("conflict").inc()
                events = events[:exc.index] + events[exc.index + 1:]
                if not events:
                    return [], []

    def _stored(self, events: list[Event], flags: list[bool], outcome: str) -> RecordResult:
        fresh = [e for e, new in zip(events, flags, strict=True) if new]
        added = self.drift.observe(fresh)
        if added:
            self._queue_drift(added)
        self.c_recorded.labels(outcome).inc(len(fresh))
        self.c_recorded.labels("duplicate").inc(len(events) - len(fresh))
        return RecordResult(len(fresh), len(events) - len(fresh), False)

    def _queue_drift(self, added: dict[tuple[str, str], list[tuple[int, float]]]) -> None:
        window = self.config.drift_window
        with self._drift_lock:
            for arm, items in added.items():
                queued = self._drift_pending.setdefault(arm, [])
                queued.extend(items)
                del queued[:-window]  # older items would fall out of the window at once anyway
        self._drift_ready.set()

    def flush_drift(self) -> None:
        """Append the queued drift items to the shared windows in Redis and refresh those arms'
        gauges. The drift thread does this, not the RecordEvents call: the window is a statistic,
        and its Redis round trip (a second AOF fsync, the window read back) used to be a third of
        the recording time on every frame's critical path. A failure drops the items (logged)."""
        with self._drift_lock:
            pending, self._drift_pending = self._drift_pending, {}
            self._drift_ready.clear()
        if not pending:
            return
        try:  # only the arms these events touched; the others (and feedback) in the periodic refresh
            self.drift.refresh(self.store.push_drift(pending, self.config.drift_window), {})
        except redis.RedisError as exc:
            log.warning("drift window not updated", extra={"error": str(exc)[:200]})

    def _drift_loop(self) -> None:
        while not self._stop.is_set():
            if self._drift_ready.wait(1.0):
                self.flush_drift()
            self._report_replayer()

    def _report_replayer(self) -> None:
        """Health and a gauge say whether the replay worker runs (the drift thread watches it)."""
        running = self._replayer is not None and self._replayer.is_alive()
        self.g_replayer.set(1 if running else 0)
        self.on_replayer_state(running)

    def replay_pending(self) -> int:
        """Replay spooled batches oldest first until the spool is empty or Redis fails again."""
        replayed = 0
        while True:
            with self._lock:
                item = self.spool.oldest()
                if item is None:
                    return replayed
                path, spooled = item
                try:
                    events, flags = self._record_replayed(spooled)
                except redis.RedisError as exc:
                    self._redis_failed(exc)
                    return replayed
                self._set_redis(True)
                self._set_full(False)
                self._stored(events, flags, "replayed")
                self.spool.remove(path)
                self._report_spool()
                replayed += len(events)

    def _watch_memory(self) -> None:
        """Redis memory for the sizing alert (maxmemory with noeviction refuses writes when full)."""
        try:
            used, limit = self.store.memory()
        except redis.RedisError:
            return
        self.g_redis_used.set(used)
        self.g_redis_max.set(limit)

    def refresh_drift(self) -> None:
        """Drift and feedback gauges from Redis: the same figures on every replica."""
        self.drift.refresh(self.store.drift_windows(), self.store.feedback_figures())

    def _replay_loop(self) -> None:
        """The replay worker. Nothing may end it but stop(): an unexpected error is logged, counted
        and tried again at the next interval (an acknowledged spooled batch waits for it)."""
        checks = 0
        while not self._stop.wait(self.config.replay_interval):
            checks += 1
            try:
                self._replay_once(checks)
            except Exception:
                self.c_replay_errors.inc()
                log.exception("spool replay failed; trying again at the next interval")

    def _replay_once(self, checks: int) -> None:
        if self._redis_up and checks % 10 == 1:
            self._watch_memory()
            with contextlib.suppress(redis.RedisError):
                self.refresh_drift()
        if self.spool.depth or not self._redis_up:
            if self.store.ping():
                n = self.replay_pending()
                if n:
                    log.info("replayed spooled events", extra={"events": n, "left": self.spool.depth})
                if self.spool.depth == 0:
                    self._set_redis(True)
            else:
                self._set_redis(False)

    def start(self) -> Aggregator:
        self._replayer = threading.Thread(target=self._replay_loop, name="spool-replay", daemon=True)
        self._replayer.start()
        self._drift_thread = threading.Thread(target=self._drift_loop, name="drift-writer", daemon=True)
        self._drift_thread.start()
        if self.spool.depth:
            log.info("spool holds events from an earlier outage", extra={"events": self.spool.depth})
        return self

    def stop(self) -> None:
        """On SIGTERM (a drain, an upgrade): hand what the spool holds to Redis if it answers, so a
        pod that goes away leaves nothing behind; otherwise it stays on the spool's volume (a
        StatefulSet pod's own claim) and is replayed when the pod starts again."""
        self._stop.set()
        if self._replayer:
            self._replayer.join(5)
        if self._drift_thread:
            self._drift_thread.join(5)
        self.flush_drift()
        if self.spool.depth:
            if self.store.ping():
                with contextlib.suppress(redis.RedisError):
                    n = self.replay_pending()
                    log.info("spool drained on stop", extra={"events": n, "left": self.spool.depth})
            else:
                log.warning("stopping with events in the spool; Redis is unreachable: they stay on disk and "
                            "are replayed at the next start", extra={"events": self.spool.depth})

    # ------------------------------------------------------------------ reads
    def _read(self, fn: Callable[[], object]) -> object:
        try:
            return fn()
        except redis.RedisError as exc:
            self._set_redis(False)
            raise Unavailable(f"Redis is unreachable: {exc}") from exc

    def _check_read(self, classroom: str) -> None:
        if not is_name(classroom):
            raise InvalidEvent(f"classroom_id {classroom[:70]!r} must be {NAME_RULE}")

    def summary(self, classroom: str, window: float, end: float = 0.0) -> Summary:
        self._check_read(classroom)
        if not (math.isfinite(window) and window > 0):
            raise InvalidEvent("window_seconds must be a finite number > 0")
        now = self.clock()
        if not (math.isfinite(end) and 0 <= end <= now + self.config.max_future_seconds):
            raise InvalidEvent("end_time must be 0 (now) or a time in seconds since epoch, not in the future")
        end = end or now
        return self._read(lambda: self.store.summary(classroom, min(window, self.config.retention_seconds), end))

    def feedback(self, event_id: str, true_label: str) -> Feedback:
        if not is_id(event_id):
            raise InvalidEvent(f"event_id {event_id[:130]!r} must be {ID_RULE}")
        if true_label not in EMOTIONS:
            raise InvalidEvent(f"true_label {true_label[:20]!r} is not one of {', '.join(EMOTIONS)}")
        stored_id = event_id if self.config.store_tracks else anonymous_id(event_id)
        result = self._read(lambda: self.store.feedback(stored_id, true_label))
        if result is None:
            raise NotFound(f"no event {event_id[:130]!r} (unknown, or older than the retention period)")
        self.drift.feedback(result.architecture, result.model_version, result.total,
                            result.recent_correct, result.recent_n)
        return result

    def erase(self, classroom: str) -> dict[str, int]:
        """Everything stored about one classroom, deleted (admin only: the server guards the RPC). Refused
        while the spool holds events: they would come back on replay, and a spool file may hold them."""
        self._check_read(classroom)
        with self._lock:  # no batch is recorded or replayed meanwhile
            if self.spool.depth:
                raise SpoolNotEmpty(f"{self.spool.depth} events wait in the spool for Redis; erase once they are "
                                    "stored (the spooled_events gauge at 0), or they would come back")
            counts = self._read(lambda: self.store.erase_classroom(classroom))
        log.warning("classroom erased", extra={"classroom": classroom, **counts})
        return counts

    def follow_start(self, classroom: str, since: float) -> str:
        """Where a follower of `classroom` starts: the stream id after which its events come."""
        self._check_read(classroom)
        if not (math.isfinite(since) and 0 <= since <= self.clock() + self.config.max_future_seconds):
            raise InvalidEvent("since must be 0 (from now on) or a time in seconds since epoch, not in the future")
        if since > 0:
            return f"{int(since * 1000)}-0"
        return self._read(lambda: self.store.last_stream_id(classroom))

    def follow_batch(self, classroom: str, after: str) -> list[tuple[str, Event]]:
        """The classroom's events stored after stream id `after` (up to 100), without waiting: a
        follower polls, so an open dashboard holds a worker for a Redis round trip, not a wait."""
        if self._stop.is_set():
            raise Unavailable("the aggregator is stopping")
        return self._read(lambda: self.store.read_stream(classroom, after, block_ms=None))
