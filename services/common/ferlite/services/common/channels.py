"""Client channels between services, with the same TLS/mTLS files the servers use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from .security import BearerToken


@dataclass(frozen=True)
class ChannelSecurity:
    """How to reach a peer: plaintext, TLS (ca) or mTLS (ca + client cert and key)."""

    ca: str = ""
    cert: str = ""
    key: str = ""
    server_name: str = ""  # overrides the name checked against the certificate
    token: str = ""  # bearer token sent on every call (the service token between services)

    @property
    def enabled(self) -> bool:
        return bool(self.ca)


def _options(max_message_bytes: int, security: ChannelSecurity | None) -> list[tuple[str, object]]:
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Spread calls over every address the target resolves to (a headless Service's pods, or
        # `ipv4:a,b`), instead of pick-first pinning each client to one replica.
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    ]
    if security is not None and security.enabled and security.server_name:
        options.append(("grpc.ssl_target_name_override", security.server_name))
    return options


def _credentials(security: ChannelSecurity) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=Path(security.ca).read_bytes(),
        private_key=Path(security.key).read_bytes() if security.key else None,
        certificate_chain=Path(security.cert).read_bytes() if security.cert else None,
    )


def open_channel(target: str, security: ChannelSecurity | None = None,
                 max_message_bytes: int = 16 * 1024 * 1024) -> grpc.Channel:
    """A channel to `target` with message limits matching the servers' defaults."""
    options = _options(max_message_bytes, security)
    if security is None or not security.enabled:
        channel = grpc.insecure_channel(target, options=options)
    else:
        channel = grpc.secure_channel(target, _credentials(security), options=options)
    if security is not None and security.token:
        return grpc.intercept_channel(channel, BearerToken(security.token))
    return channel


def open_aio_channel(target: str, security: ChannelSecurity | None = None,
                     max_message_bytes: int = 16 * 1024 * 1024) -> aio.Channel:
    """The same channel for an asyncio caller (the dashboard): its calls are awaited on the caller's
    event loop. Open it on the loop that will use it; the bearer token goes with each call
    (`token_metadata`), as aio channels take no client interceptors after creation."""
    options = _options(max_message_bytes, security)
    if security is None or not security.enabled:
        return aio.insecure_channel(target, options=options)
    return aio.secure_channel(target, _credentials(security), options=options)
