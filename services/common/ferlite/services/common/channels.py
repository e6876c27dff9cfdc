"""Client channels between services, with the same TLS/mTLS files the servers use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc

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


def open_channel(target: str, security: ChannelSecurity | None = None,
                 max_message_bytes: int = 16 * 1024 * 1024) -> grpc.Channel:
    """A channel to `target` with message limits matching the servers' defaults."""
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # Spread calls over every address the target resolves to (a headless Service's pods, or
        # `ipv4:a,b`), instead of pick-first pinning each client to one replica.
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    ]
    channel = _secure_or_plain(target, security, options)
    if security is not None and security.token:
        return grpc.intercept_channel(channel, BearerToken(security.token))
    return channel


def _secure_or_plain(target: str, security: ChannelSecurity | None, options: list[tuple[str, object]]) -> grpc.Channel:
    if security is None or not security.enabled:
        return grpc.insecure_channel(target, options=options)
    creds = grpc.ssl_channel_credentials(
        root_certificates=Path(security.ca).read_bytes(),
        private_key=Path(security.key).read_bytes() if security.key else None,
        certificate_chain=Path(security.cert).read_bytes() if security.cert else None,
    )
    if security.server_name:
        options.append(("grpc.ssl_target_name_override", security.server_name))
    return grpc.secure_channel(target, creds, options=options)
