"""Issue 28: the dashboard, as a real process in front of a real aggregator (embedded Redis). A
teacher's token reads its classrooms and nothing else, nothing is answered without a credential,
the API's shares match what was recorded, and hostile input is refused without being echoed."""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.parse

import grpc
import pytest

from ferlite.base.events import event_to_pb
from ferlite.services.aggregator.config import AggregatorConfig
from ferlite.services.aggregator.server import build
from ferlite.services.common.security import token_metadata
from ferlite.v1 import aggregator_pb2 as apb
from ferlite.v1 import aggregator_pb2_grpc as apb_grpc
from tests.support.events import event
from tests.support.procs import ServiceProcess

ADMIN, SERVICE = "admin-token-of-the-district", "pipeline-service-token-000"
TEACHER_A, TEACHER_B = "teacher-of-room-a-000000", "teacher-of-room-b-000000"


def request(port: int, method: str, path: str, token: str = "", cookie: str = "", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if cookie:
        sent["Cookie"] = cookie
    conn.request(method, path, body=body, headers=sent)
    reply = conn.getresponse()
    out = reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    conn.close()
    return out


@pytest.fixture
def stack(tmp_path):
    """An aggregator with two teachers, 5 events in room-a (2 uncertain) and 3 in room-b, and a
    dashboard process reading it."""
    teachers = tmp_path / "teacher-tokens"
    teachers.write_text(f"{TEACHER_A} room-a\n{TEACHER_B} room-b\n")
    aggregator = build(AggregatorConfig(port=0, metrics_port=-1, data_dir=str(tmp_path / "agg"), auth_token=ADMIN,
                                        service_token=SERVICE, teacher_tokens_file=str(teachers))).start()
    now = time.time()
    with grpc.insecure_channel(f"127.0.0.1:{aggregator.port}") as channel:
        stub = apb_grpc.AggregatorStub(channel)
        for room, labels in (("room-a", ["happy", "happy", "happy", "sad", "fear"]), ("room-b", ["angry"] * 3)):
            evs = [event_to_pb(event(i, label, ts=now - 5, classroom=room, uncertain=label in ("sad", "fear")))
                   for i, label in enumerate(labels)]
            for e in evs:
                e.event_id, e.stream_id = f"{room}-{e.event_id}", f"{room}-cam"
            stub.RecordEvents(apb.RecordEventsRequest(events=evs), metadata=token_metadata(SERVICE), timeout=10)
    dashboard = ServiceProcess([sys.executable, "-m", "ferlite.services.dashboard", "--port", "0",
                                "--aggregator-url", f"127.0.0.1:{aggregator.port}"]).start()
    yield aggregator, dashboard
    dashboard.stop()
    aggregator.stop(0)


def test_a_teacher_reads_their_classroom_and_nothing_else(stack) -> None:
    _aggregator, dashboard = stack
    path = "/api/classrooms/room-a/summary?window=600"
    assert request(dashboard.port, "GET", path)[0] == 401  # no credential: nobody is asked
    assert request(dashboard.port, "GET", path, token="not-a-token-at-all-0000")[0] == 401
    assert request(dashboard.port, "GET", path, token=TEACHER_B)[0] == 403
    status, headers, body = request(dashboard.port, "GET", path, token=TEACHER_A)
    assert status == 200 and headers["content-type"].startswith("application/json")
    data = json.loads(body)
    assert data["events"] == 5 and data["kept_events"] == 3
    assert data["shares"]["happy"] == pytest.approx(1.0) and sum(data["shares"].values()) == pytest.approx(1.0)
    assert data["uncertain_share"] == pytest.approx(2 / 5) and data["window_seconds"] == 600
    assert data["models"] == {"mobilenet_v2": {"events": 5, "share": 1.0}}
    assert sum(m["events"] for m in data["timeline"]) == 5
    assert "track" not in body.decode() and "box" not in body.decode()  # no per-student rows
    assert json.loads(request(dashboard.port, "GET", "/api/classrooms/room-b/summary", token=ADMIN)[2])["events"] == 3


def test_signing_in_sets_a_strict_http_only_cookie_that_the_page_uses(stack) -> None:
    _aggregator, dashboard = stack
    status, headers, _ = request(dashboard.port, "GET", "/classrooms/room-a")
    assert status == 303 and headers["location"] == "/?classroom=room-a"  # sign in first
    form = urllib.parse.urlencode({"classroom": "room-a", "token": TEACHER_A}).encode()
    status, headers, _ = request(dashboard.port, "POST", "/signin", body=form,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["location"] == "/classrooms/room-a"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = cookie.split(";")[0]
    status, headers, page = request(dashboard.port, "GET", "/classrooms/room-a", cookie=jar)
    assert status == 200 and b"/static/dashboard.js" in page
    assert "script-src 'self'" in headers["content-security-policy"] and headers["x-frame-options"] == "DENY"
    assert json.loads(request(dashboard.port, "GET", "/api/classrooms/room-a/summary", cookie=jar)[2])["events"] == 5
    status, headers, script = request(dashboard.port, "GET", "/static/dashboard.js")
    assert status == 200 and "javascript" in headers["content-type"] and b"textContent" in script
    assert request(dashboard.port, "GET", "/static/")[0] in (403, 404)  # no listing


def test_hostile_input_is_refused_without_echo(stack) -> None:
    _aggregator, dashboard = stack
    marker = "zq" * 300
    for path in (f"/api/classrooms/room-a/summary?window={marker}", "/api/classrooms/room-a/summary?window=1e12",
                 "/api/classrooms/room-a/summary?window=nan", f"/api/classrooms/{marker}%3Cscript%3E/summary"):
        status, _, body = request(dashboard.port, "GET", path, token=TEACHER_A)
        assert status == 400 and marker.encode() not in body and b"<script" not in body, path
    status, _, _ = request(dashboard.port, "POST", "/signin", body=b"token=" + b"x" * 100_000,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413  # a body past 16 KB is refused before it is read
    status, _, body = request(dashboard.port, "POST", "/signin", body=f"classroom=room-a&token={marker}\x07".encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400 and marker.encode() not in body


def test_ready_follows_the_aggregator(stack) -> None:
    aggregator, dashboard = stack
    assert request(dashboard.port, "GET", "/readyz")[0] == 200
    aggregator.stop(0)
    deadline = time.monotonic() + 10
    while request(dashboard.port, "GET", "/readyz")[0] != 503:
        assert time.monotonic() < deadline, "readyz still 200 with the aggregator gone"
        time.sleep(0.2)
    assert request(dashboard.port, "GET", "/healthz")[0] == 200  # alive: only readiness follows its peer
    assert request(dashboard.port, "GET", "/api/classrooms/room-a/summary", token=TEACHER_A)[0] == 503
