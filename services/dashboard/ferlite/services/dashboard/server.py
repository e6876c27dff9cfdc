"""The dashboard's HTTP transport: sign-in, the classroom page, and the JSON API under /api/.

It holds no credential of its own and no data. Every read goes to the aggregator's gRPC API with
the signed-in teacher's own token, and the aggregator decides what that token may read (a
teacher's classrooms; the admin token, all). So the dashboard cannot show more than its caller
could ask the aggregator for, and a stolen dashboard pod holds no key.

A request without a credential is answered 401 without calling anyone. The server is asyncio
(aiohttp): an idle or slow browser holds a coroutine, not a thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ferlite.base.event_rules import NAME_RULE, is_name
from ferlite.services.common.channels import ChannelSecurity, open_aio_channel
from ferlite.services.common.config import ConfigError, load_config
from ferlite.services.common.logs import configure_logging
from ferlite.services.common.security import token_metadata
from ferlite.v1 import aggregator_pb2, aggregator_pb2_grpc

from . import views
from .config import DashboardConfig

log = logging.getLogger("ferlite.dashboard")
STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "ferlite_token"
MAX_TOKEN_CHARS = 512
# The pages load only their own script and style sheet: no CDN, no inline code, never framed.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
# gRPC status from the aggregator -> HTTP status, and a message of our own (no payload echoed).
STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: (401, "this credential is not valid: sign in again"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "this credential may not read this classroom"),
    grpc.StatusCode.INVALID_ARGUMENT: (400, "the aggregator refused the request's parameters"),
    grpc.StatusCode.UNAVAILABLE: (503, "the aggregator is unavailable; the page retries"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "the aggregator did not answer in time; the page retries"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "too many requests with this credential; slow down"),
}


def credential(request: web.Request) -> str:
    """The caller's token: `Authorization: Bearer ...` (API clients) or the sign-in cookie (the page)."""
    header = request.headers.get("Authorization", "")
    token = header[len("Bearer "):].strip() if header.startswith("Bearer ") else request.cookies.get(COOKIE, "")
    return token if 0 < len(token) <= MAX_TOKEN_CHARS and token.isprintable() else ""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Dashboard:
    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self.security = ChannelSecurity(config.aggregator_tls_ca, config.aggregator_tls_cert, config.aggregator_tls_key,
                                        server_name=config.aggregator_tls_server_name)
        self.channel: grpc.aio.Channel | None = None
        self.stub: aggregator_pb2_grpc.AggregatorStub | None = None
        self.health: health_pb2_grpc.HealthStub | None = None

    async def open(self, _app: web.Application) -> None:
        self.channel = open_aio_channel(self.config.aggregator_url, self.security)
        self.stub = aggregator_pb2_grpc.AggregatorStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def close(self, _app: web.Application) -> None:
        if self.channel is not None:
            await self.channel.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024, middlewares=[security_headers])
        app.on_startup.append(self.open)
        app.on_cleanup.append(self.close)
        app.add_routes([
            web.get("/", self.signin_page),
            web.post("/signin", self.signin),
            web.post("/signout", self.signout),
            web.get("/classrooms/{classroom}", self.classroom_page),
            web.get("/api/classrooms/{classroom}/summary", self.summary),
            web.get("/api/settings", self.settings),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.static("/static", STATIC, show_index=False, follow_symlinks=False),
        ])
        return app

    async def signin_page(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "signin.html")

    async def classroom_page(self, request: web.Request) -> web.StreamResponse:
        classroom = request.match_info["classroom"]
        if not is_name(classroom):
            return _error(400, f"a classroom id must be {NAME_RULE}")
        if not credential(request):
            raise web.HTTPSeeOther(f"/?classroom={classroom}")
        return web.FileResponse(STATIC / "classroom.html")

    async def signin(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        token, classroom = str(form.get("token", "")).strip(), str(form.get("classroom", "")).strip()
        if not is_name(classroom):
            return _error(400, f"a classroom id must be {NAME_RULE}")
        if not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isprintable():
            return _error(400, f"the token must be 1 to {MAX_TOKEN_CHARS} printable characters")
        response = web.HTTPSeeOther(f"/classrooms/{classroom}")
        # HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it.
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=self.config.secure_cookies or bool(self.config.tls_cert))
        raise response

    async def signout(self, _request: web.Request) -> web.StreamResponse:
        response = web.HTTPSeeOther("/")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def settings(self, _request: web.Request) -> web.Response:
        """What the page needs to know of the server: how often to refresh, which windows."""
        return web.json_response({"refresh_seconds": self.config.refresh_seconds, "windows": views.WINDOWS,
                                  "max_window_seconds": views.MAX_WINDOW_SECONDS})

    async def summary(self, request: web.Request) -> web.Response:
        token = credential(request)
        if not token:
            return _error(401, "sign in first: a teacher token (cookie or Authorization: Bearer)")
        classroom = request.match_info["classroom"]
        if not is_name(classroom):
            return _error(400, f"a classroom id must be {NAME_RULE}")
        try:
            window = float(request.query.get("window", "900"))
        except ValueError:
            window = math.nan
        if not (math.isfinite(window) and 1 <= window <= views.MAX_WINDOW_SECONDS):
            return _error(400, f"window must be a number of seconds from 1 to {views.MAX_WINDOW_SECONDS}")
        assert self.stub is not None
        try:
            answer = await self.stub.GetSummary(
                aggregator_pb2.SummaryRequest(classroom_id=classroom, window_seconds=window),
                metadata=token_metadata(token), timeout=self.config.timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            status, message = STATUS.get(exc.code(), (502, "the aggregator failed"))
            if status >= 500:
                log.warning("summary failed", extra={"code": exc.code().name})
            return _error(status, message)
        return web.json_response(views.summary(answer, window))

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        """Ready when the aggregator answers its health check (the dashboard shows nothing without it)."""
        assert self.health is not None
        try:
            reply = await self.health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.aio.AioRpcError as exc:
            return web.json_response({"status": "aggregator unreachable", "code": exc.code().name}, status=503)
        ok = reply.status == health_pb2.HealthCheckResponse.SERVING
        return web.json_response({"status": "ok" if ok else "aggregator not serving"}, status=200 if ok else 503)


@web.middleware
async def security_headers(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and aiohttp's own 404/405/413 get the headers too
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    return response


async def serve(config: DashboardConfig, stop: asyncio.Event) -> None:
    runner = web.AppRunner(Dashboard(config).app(), access_log=None, handle_signals=False)
    await runner.setup()
    context = None
    if config.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.tls_cert, config.tls_key)
    site = web.TCPSite(runner, config.host, config.port, ssl_context=context, shutdown_timeout=5)
    try:
        await site.start()
        server = site._server
        port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else config.port
        scheme = "https" if context else "http"
        log.info("serving", extra={"port": port, "metrics_port": -1, "url": f"{scheme}://{config.host}:{port}/",
                                   "aggregator": config.aggregator_url, "tls": bool(context)})
        await stop.wait()
        log.info("draining", extra={"grace_seconds": 5})
    finally:
        await runner.cleanup()
    log.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    prog = "ferlite serve dashboard"
    try:
        config = load_config(DashboardConfig, argv, prog=prog)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.SERVICE, config.log_level, config.log_format)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        print(f"{prog}: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
