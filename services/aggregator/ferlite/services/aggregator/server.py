"""gRPC transport of the aggregator: protobuf <-> `Event`, errors -> status codes. No logic here."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import redis
from grpc import aio

from ferlite.base.event_rules import shown
from ferlite.base.events import InvalidEvent, event_from_pb, event_to_pb
from ferlite.base.labels import EMOTIONS
from ferlite.services.common.calls import Aborted, SyncContext, in_worker
from ferlite.services.common.config import ConfigError
from ferlite.services.common.credentials import ClassroomTokens, CredentialsError
from ferlite.services.common.metrics import ServiceMetrics
from ferlite.services.common.runner import run_service
from ferlite.services.common.security import bearer
from ferlite.services.common.server import GrpcServer, Mount
from ferlite.v1 import aggregator_pb2 as pb
from ferlite.v1 import aggregator_pb2_grpc as pb_grpc
from ferlite.v1 import common_pb2

from .config import AggregatorConfig
from .core import Aggregator, NotFound, SpoolNotEmpty, Unavailable
from .embedded import EmbeddedRedis
from .spool import Spool
from .store import EventConflict, RedisStore

SERVICE_NAME = "ferlite.v1.Aggregator"
REDIS_HEALTH = "ferlite.aggregator.redis"  # NOT_SERVING while Redis is down (writes are spooled)
REPLAY_HEALTH = "ferlite.aggregator.replay"  # NOT_SERVING if the spool's replay worker is not running
# NOT_SERVING while Redis answers but refuses writes at its maxmemory (events are spooled): "Redis
# full" told apart from "Redis down" (REDIS_HEALTH stays SERVING then).
REDIS_ROOM_HEALTH = "ferlite.aggregator.redis_room"
# Erasing a classroom takes the admin token. Reads and feedback take a teacher token (for its
# classrooms: checked here) or the admin token; RecordEvents, the pipeline's write path, the service
# token (when one is configured: the local stack and the chart do).
PROTECTED = [f"/{SERVICE_NAME}/EraseClassroom"]
TEACHER = [f"/{SERVICE_NAME}/{m}" for m in ("GetSummary", "StreamEvents", "SubmitFeedback")]
INTERNAL = [f"/{SERVICE_NAME}/RecordEvents"]
FOLLOW_POLL_SECONDS = 0.2  # how stale a follower's view may be; a poll is one cheap XREAD



def not_readable(classroom: str) -> str:
    return f"this token may not read classroom_id {shown(classroom)}"


def _counts(counts: dict[str, int]) -> list[pb.LabelCount]:
    """Counts per label in the canonical order, all seven present."""
    return [pb.LabelCount(label=k, count=counts[k]) for k in EMOTIONS]

class AggregatorServicer(pb_grpc.AggregatorServicer):
    def __init__(self, core: Aggregator, teachers: ClassroomTokens | None = None, admin_token: str = "") -> None:
        self.core = core
        self.teachers = teachers or ClassroomTokens()
        self.admin_token = admin_token

    def _may_read(self, context: grpc.ServicerContext, classroom: str) -> bool:
        """A teacher token reads its own classrooms only; the admin token (or no teachers configured) all."""
        return self.teachers.permits(bearer(context.invocation_metadata()), classroom, self.admin_token)

    def _check_reader(self, context: grpc.ServicerContext, classroom: str) -> None:
        if not self._may_read(context, classroom):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, not_readable(classroom))

    def _fail(self, context: grpc.ServicerContext, exc: Exception) -> None:
        if isinstance(exc, InvalidEvent):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if isinstance(exc, EventConflict):
            context.abort(grpc.StatusCode.ALREADY_EXISTS, str(exc))
        if isinstance(exc, NotFound):
            context.abort(grpc.StatusCode.NOT_FOUND, exc.args[0])
        if isinstance(exc, Unavailable):
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        if isinstance(exc, SpoolNotEmpty):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        raise exc

    def RecordEvents(self, request: pb.RecordEventsRequest, context: grpc.ServicerContext) -> pb.RecordEventsResponse:
        try:
            result = self.core.record([event_from_pb(e) for e in request.events])
        except Exception as exc:
            self._fail(context, exc)
        return pb.RecordEventsResponse(accepted=result.accepted, duplicates=result.duplicates, spooled=result.spooled)

    def GetSummary(self, request: pb.SummaryRequest, context: grpc.ServicerContext) -> pb.ClassroomSummary:
        self._check_reader(context, request.classroom_id)
        try:
            s = self.core.summary(request.classroom_id, request.window_seconds, request.end_time)
        except Exception as exc:
            self._fail(context, exc)
        return pb.ClassroomSummary(
            classroom_id=s.classroom_id, start_time=s.start_time, end_time=s.end_time, total_events=s.total,
            distribution=_counts(s.distribution),
            dominant_label=s.dominant, uncertain_share=s.uncertain_share, kept=_counts(s.kept),
            models=[pb.ModelCount(architecture=a, count=n) for a, n in s.models.items()],
            per_minute=[pb.MinuteCounts(minute_start=m.start, counts=_counts(m.counts), kept=_counts(m.kept),
                                        uncertain=m.uncertain) for m in s.per_minute])

    async def StreamEvents(self, request: pb.StreamEventsRequest,
                           context: aio.ServicerContext) -> AsyncIterator[pb.EmotionEvent]:
        """A classroom's events as they are stored. Each poll is one Redis read in a worker; between
        polls the follower waits on the event loop, so open dashboards never take the workers that
        RecordEvents needs."""
        classroom = request.classroom_id
        if not self._may_read(SyncContext(context), classroom):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, not_readable(classroom))
        try:
            after = await in_worker(self.core.follow_start, classroom, request.since)
            while not context.cancelled():
                batch = await in_worker(self.core.follow_batch, classroom, after)
                for entry_id, event in batch:
                    after = entry_id
                    yield event_to_pb(event)
                if not batch:
                    await asyncio.sleep(FOLLOW_POLL_SECONDS)
        except (InvalidEvent, NotFound, Unavailable) as exc:
            sync = SyncContext(context)
            try:
                self._fail(sync, exc)
            except Aborted as aborted:
                await context.abort(aborted.code, aborted.details)

    def EraseClassroom(self, request: pb.EraseClassroomRequest,
                       context: grpc.ServicerContext) -> pb.EraseClassroomResponse:
        try:
            counts = self.core.erase(request.classroom_id)
        except Exception as exc:
            self._fail(context, exc)
        return pb.EraseClassroomResponse(classroom_id=request.classroom_id, **counts)

    def SubmitFeedback(self, request: pb.FeedbackRequest, context: grpc.ServicerContext) -> pb.FeedbackResponse:
        try:
            fb = self.core.feedback(request.event_id, request.true_label)
        except Exception as exc:
            self._fail(context, exc)
        return pb.FeedbackResponse(correct=fb.correct, model=common_pb2.ModelRef(
            architecture=fb.architecture, model_version=fb.model_version))


def connect(config: AggregatorConfig) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """The configured Redis, or an embedded one persisting under data_dir when no URL is set."""
    embedded = None
    url = config.redis_url
    if not url:
        embedded = EmbeddedRedis(Path(config.data_dir) / "redis", password=config.redis_password,
                                 maxmemory=config.embedded_redis_maxmemory).start()
        url = embedded.url
    options: dict = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0, "health_check_interval": 10}
    if config.redis_password:
        options["password"] = config.redis_password
    if config.redis_tls_ca:
        options["ssl_ca_certs"] = config.redis_tls_ca
    return redis.Redis.from_url(url, **options), embedded


class AggregatorServer(GrpcServer):
    """The gRPC server plus the aggregator core it serves (started and stopped with it)."""

    def __init__(self, config: AggregatorConfig, core: Aggregator, metrics: ServiceMetrics,
                 on_stop: list) -> None:
        try:
            teachers = ClassroomTokens.load(config.teacher_tokens_file)
        except CredentialsError as exc:
            raise ConfigError(str(exc)) from None
        servicer = AggregatorServicer(core, teachers, config.token)
        super().__init__(config, [Mount(SERVICE_NAME, lambda s: pb_grpc.add_AggregatorServicer_to_server(servicer, s))],
                         metrics=metrics, on_stop=[core.stop, *on_stop], protected=PROTECTED,
                         internal=INTERNAL, scoped={m: teachers.tokens for m in TEACHER})
        self.core = core
        core.on_redis_state = lambda up: self.set_serving(REDIS_HEALTH, up)
        core.on_replayer_state = lambda running: self.set_serving(REPLAY_HEALTH, running)
        core.on_redis_full = lambda full: self.set_serving(REDIS_ROOM_HEALTH, not full)

    def start(self) -> AggregatorServer:
        super().start()
        self.set_serving(REDIS_HEALTH, self.core.store.ping())
        self.set_serving(REDIS_ROOM_HEALTH, True)
        self.core.start()
        return self


def build(config: AggregatorConfig, client: redis.Redis | None = None) -> AggregatorServer:
    """Wire Redis (given, configured, or embedded), the spool and the core into a server."""
    embedded = None
    if client is None:
        client, embedded = connect(config)
    try:  # a wrong password is a configuration error, not an outage to spool through
        client.ping()
    except redis.AuthenticationError as exc:
        client.close()
        if embedded:
            embedded.stop()
        raise ConfigError(f"Redis refused the credentials (redis_password): {exc}") from None
    except redis.ResponseError as exc:
        if "NOAUTH" in str(exc):
            raise ConfigError("Redis requires a password: set redis_password") from None
        raise
    except redis.ConnectionError:
        pass  # Redis may come up later: events are spooled until it does
    metrics = ServiceMetrics(config.SERVICE)
    store = RedisStore(client, config.key_prefix, config.retention_seconds, config.stream_maxlen,
                       config.feedback_window, config.event_marker_seconds)
    core = Aggregator(config, store, Spool(Path(config.data_dir) / "spool", int(config.spool_max_mb * 2**20)), metrics)
    if embedded:
        restarts = metrics.counter("embedded_redis_restarts_total", "Times the embedded Redis died and was "
                                   "restarted.", [])
        embedded.watch(on_restart=restarts.inc)
    closers = [client.close] + ([embedded.stop] if embedded else [])
    return AggregatorServer(config, core, metrics, on_stop=closers)


def main(argv: Sequence[str] | None = None) -> int:
    return run_service(AggregatorConfig, build, argv)


if __name__ == "__main__":
    sys.exit(main())
