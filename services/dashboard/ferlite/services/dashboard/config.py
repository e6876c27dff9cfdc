"""Dashboard configuration (flags or FERLITE_DASHBOARD_* variables)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ferlite.services.common.config import ConfigError, Settings, check_file, check_logging, check_port, setting


@dataclass(frozen=True)
class DashboardConfig(Settings):
    """The dashboard: a teacher's view of their classroom, over HTTP."""

    SERVICE: ClassVar[str] = "dashboard"

    host: str = setting("127.0.0.1", "address to bind (0.0.0.0 in containers)")
    port: int = setting(8080, "HTTP port; 0 picks a free one")
    aggregator_url: str = setting("127.0.0.1:50053", "the aggregator's gRPC address (host:port or unix:PATH); every "
                                  "read goes there with the signed-in teacher's own token, which the aggregator checks")
    aggregator_tls_ca: str = setting("", "CA (PEM) of the aggregator's TLS certificate; empty: plaintext")
    aggregator_tls_cert: str = setting("", "client certificate (PEM) for an aggregator that requires mTLS")
    aggregator_tls_key: str = setting("", "private key (PEM) of aggregator_tls_cert")
    aggregator_tls_server_name: str = setting("", "name checked against the aggregator's certificate, if not the "
                                              "host in aggregator_url")
    tls_cert: str = setting("", "serve HTTPS with this certificate (PEM) and tls_key; behind an Ingress that "
                            "terminates TLS, leave empty and set secure_cookies")
    tls_key: str = setting("", "private key (PEM) of tls_cert")
    secure_cookies: bool = setting(False, "mark the sign-in cookie Secure (sent over HTTPS only); on by itself "
                                   "with tls_cert")
    refresh_seconds: float = setting(5.0, "how often an open classroom page asks for new figures")
    timeout_seconds: float = setting(5.0, "longest wait for the aggregator per request")
    log_level: str = setting("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting("json", "json (one object a line) or text")

    def validate(self) -> None:
        check_port("port", self.port)
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert and tls_key must be given together")
        if bool(self.aggregator_tls_cert) != bool(self.aggregator_tls_key):
            raise ConfigError("aggregator_tls_cert and aggregator_tls_key must be given together")
        if self.aggregator_tls_cert and not self.aggregator_tls_ca:
            raise ConfigError("aggregator_tls_cert (mTLS) needs aggregator_tls_ca")
        for name in ("tls_cert", "tls_key", "aggregator_tls_ca", "aggregator_tls_cert", "aggregator_tls_key"):
            check_file(name, getattr(self, name))
        if not self.aggregator_url:
            raise ConfigError("aggregator_url is required")
        if not 1 <= self.refresh_seconds <= 3600 or not 0 < self.timeout_seconds <= 60:
            raise ConfigError("refresh_seconds must be in [1, 3600] and timeout_seconds in (0, 60]")
        check_logging(self.log_level, self.log_format)
