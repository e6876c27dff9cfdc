"""Typed service configuration from CLI flags and `FERLITE_<SERVICE>_<FIELD>` variables.

Each service declares one frozen dataclass deriving from `ServerConfig`. Fields become
`--field-name` flags and `FERLITE_<SERVICE>_<FIELD_NAME>` environment variables (flags win over
the environment, which wins over the defaults). Every value is type-checked and validated at
start-up, and a bad one is reported as ONE line naming the flag and the variable, so that an
operator reading a crash-looping pod's log sees the cause at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="Settings")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """An invalid setting; its message is one line meant for the operator."""


def setting(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with the help text its flag shows."""
    return field(default=default, metadata={"help": help, **extra})


def check_port(name: str, value: int, allow_zero: bool = True) -> None:
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(f"{name}={value} is not a port number ({low}..65535)")


def check_file(name: str, value: str) -> None:
    if value and not Path(value).is_file():
        raise ConfigError(f"{name}={value!r}: no such file")


def check_logging(level: str, fmt: str) -> None:
    if level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"log_level={level!r} must be DEBUG, INFO, WARNING or ERROR")
    if fmt not in {"json", "text"}:
        raise ConfigError(f"log_format={fmt!r} must be json or text")


@dataclass(frozen=True)
class Settings:
    """A component's typed settings: one frozen dataclass, each field a `--flag` and a
    FERLITE_<SERVICE>_<FIELD> variable, checked once when built. gRPC services derive from
    `ServerConfig`; other components (the dashboard) from this directly."""

    SERVICE: ClassVar[str] = "service"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError on the first invalid field. Subclasses extend, calling super()."""

    @classmethod
    def env_name(cls, field_name: str) -> str:
        return f"FERLITE_{cls.SERVICE.upper()}_{field_name.upper()}"


@dataclass(frozen=True)
class ServerConfig(Settings):
    """Settings every gRPC service shares. Subclasses set SERVICE and their own defaults."""

    host: str = setting("127.0.0.1", "address to bind (0.0.0.0 in containers)")
    port: int = setting(0, "gRPC port; 0 picks a free one")
    metrics_port: int = setting(0, "Prometheus /metrics port; 0 picks a free one, -1 disables")
    health_port: int = setting(-1, "also serve grpc.health.v1, and nothing else, in plaintext on this port: for "
                               "probes that cannot speak TLS (the kubelet's) when the service port is TLS; -1 off")
    socket: str = setting("", "also serve on this Unix socket (plaintext; its folder must be this user's, 0700): "
                              "the local stack's hops use it, so no other local user can connect or take its place")
    max_workers: int = setting(16, "threads running calls at once (an open call with no request yet holds none)")
    max_calls_per_peer: int = setting(256, "calls one address may have open at once on open methods (reflection; "
                                           "everything while auth is off)")
    max_calls_per_credential: int = setting(128, "calls one token may have open at once on guarded methods")
    max_message_mb: float = setting(16.0, "largest request or response, megabytes")
    grace_seconds: float = setting(10.0, "on SIGTERM, how long in-flight calls may finish")
    tls_cert: str = setting("", "server certificate (PEM); enables TLS with tls_key")
    tls_key: str = setting("", "server private key (PEM)")
    tls_client_ca: str = setting("", "CA (PEM) that client certificates must chain to: mTLS")
    auth_token: str = setting("", "bearer token required on this service's protected RPCs; empty disables")
    auth_token_file: str = setting("", "file holding the bearer token (a mounted Secret); overrides auth_token")
    service_token: str = setting("", "bearer token of the pipeline's writes (Process, ProcessStream, Classify, "
                                     "RecordEvents), required from callers and sent to peers; empty leaves them open")
    service_token_file: str = setting("", "file holding the service token (a mounted Secret); overrides "
                                          "service_token")
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting("json", "json (one object a line) or text")

    def validate(self) -> None:
        check_port("port", self.port)
        if self.metrics_port != -1:
            check_port("metrics_port", self.metrics_port)
        if self.health_port != -1:
            check_port("health_port", self.health_port)
        for name in ("max_workers", "max_calls_per_peer", "max_calls_per_credential"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be at least 1")
        if not 0 < self.max_message_mb <= 1024:
            raise ConfigError(f"max_message_mb={self.max_message_mb} must be in (0, 1024]")
        if self.grace_seconds < 0:
            raise ConfigError(f"grace_seconds={self.grace_seconds} must be >= 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key must be given together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        for name in ("tls_cert", "tls_key", "tls_client_ca", "auth_token_file", "service_token_file"):
            check_file(name, getattr(self, name))
        check_logging(self.log_level, self.log_format)

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 1024 * 1024)

    @property
    def token(self) -> str:
        """The bearer token in force ("" when auth is off)."""
        if self.auth_token_file:
            return Path(self.auth_token_file).read_text().strip()
        return self.auth_token

    @property
    def service_token_value(self) -> str:
        """The service token in force ("" when the pipeline's writes are open)."""
        if self.service_token_file:
            return Path(self.service_token_file).read_text().strip()
        return self.service_token

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert)


def _field_types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    out: dict[str, type] = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        out[f.name] = hint
    return out


def _convert(raw: str, kind: type, where: str) -> Any:
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ConfigError(f"{where}={raw!r} is not a boolean (true/false)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{where}={raw!r} is not an integer") from None
    if kind is float:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{where}={raw!r} is not a number") from None
    return raw


def build_parser(cls: type[C], prog: str | None = None, description: str | None = None
                 ) -> argparse.ArgumentParser:
    """An argparse parser with one flag per config field (defaults shown, env names listed)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description or (cls.__doc__ or "").strip().splitlines()[0],
        epilog=f"Every flag can also be set as FERLITE_{cls.SERVICE.upper()}_<FLAG> "
        "(upper case, underscores); flags win over the environment.",
    )
    kinds = _field_types(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default!r}; env {cls.env_name(f.name)})"
        if kinds[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=kinds[f.name].__name__.upper(),
                                help=help_text)
    return parser


def load_config(cls: type[C], argv: Sequence[str] | None = None,
                environ: Mapping[str, str] | None = None, prog: str | None = None) -> C:
    """Build `cls` from flags, then environment, then defaults; raise ConfigError if invalid."""
    environ = os.environ if environ is None else environ
    parser = build_parser(cls, prog=prog)
    args = parser.parse_args(list(argv) if argv is not None else None)
    kinds = _field_types(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        flag_value = getattr(args, f.name)
        env_key = cls.env_name(f.name)
        if flag_value is not None:
            values[f.name] = (flag_value if kinds[f.name] is bool
                              else _convert(flag_value, kinds[f.name], "--" + f.name.replace("_", "-")))
        elif env_key in environ:
            values[f.name] = _convert(environ[env_key], kinds[f.name], env_key)
    return cls(**values)
