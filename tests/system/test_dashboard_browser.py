"""Issue 28: a teacher's page in a real browser. `ferlite up` with the shipped model pack and a
teacher's token for one classroom, a short clip streamed into it, then Debian's headless Chromium
signs in as that teacher on the dashboard URL that `up` printed and loads the classroom page: the
shares it draws must be the API's, the timeline must have bars, the model that answered must be
named, the window buttons must work, the page must follow a second clip while it is open (live),
and another classroom must stay closed to this teacher.

FERLITE_DASHBOARD_SCREENSHOT=PATH saves the page as PNG (docs/images/dashboard.png is made so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ferlite.app.sample_clip import make_clip
from ferlite.app.stack import StackConfig, free_port_offset
from tests.support.browser import Browser
from tests.support.procs import ROOT, require_tool
from tests.support.stack import RunningUp

ROOM, OTHER_ROOM = "browser-room", "other-room"
TEACHER = "teacher-of-the-browser-room-0000"

PAGE_FIGURES = """JSON.stringify({
  events: Number(document.body.dataset.events),
  shares: Object.fromEntries([...document.querySelectorAll('#shares li')].map(
    li => [li.dataset.label, Number(li.dataset.share)])),
  shown: [...document.querySelectorAll('#shares li')].map(li => li.textContent),
  bars: document.querySelectorAll('#timeline rect').length,
  rows: document.querySelectorAll('#timeline-table tbody tr').length,
  headline: document.getElementById('headline').textContent,
  models: document.getElementById('models').textContent,
  uncertain: document.getElementById('uncertain').textContent,
  buttons: [...document.querySelectorAll('#windows button')].map(b => [b.textContent, b.getAttribute('aria-pressed')]),
})"""


def api(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


def test_a_teacher_sees_the_streamed_classroom_in_a_real_browser(tmp_path) -> None:
    chromium = require_tool("chromium")
    offset = free_port_offset()
    ports = StackConfig.with_port_offset(offset)
    data_dir = tmp_path / "var"
    teachers = tmp_path / "teachers"
    teachers.write_text(f"{TEACHER} {ROOM}\n")
    teachers.chmod(0o600)
    up = RunningUp("--data-dir", str(data_dir), "--port-offset", str(offset),
                   env={"FERLITE_AGGREGATOR_TEACHER_TOKENS_FILE": str(teachers)})
    try:
        up.wait_up()
        url = up.line_starting("dashboard:").split()[1]
        assert url == f"http://127.0.0.1:{ports.dashboard_port}/"  # the port offset applied
        clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, scenes="portrait")

        def stream(room: str) -> None:
            done = subprocess.run(
                [sys.executable, "-m", "ferlite", "stream", "--source", str(clip), "--classroom", room,
                 "--target", f"127.0.0.1:{ports.facedetect_port}", "--fps", "10",
                 "--token-file", str(data_dir / "camera-token"), "--summary-token-file", str(data_dir / "auth-token")],
                cwd=ROOT, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]

        stream(ROOM)
        stream(OTHER_ROOM)
        token = TEACHER
        expected = api(f"{url}api/classrooms/{ROOM}/summary?window=900", token)
        assert expected["events"] >= 10 and expected["models"]

        with Browser(chromium, tmp_path / "profile") as browser:
            browser.goto(f"{url}classrooms/{ROOM}")  # not signed in: sent to the sign-in form
            assert browser.evaluate("location.pathname + location.search") == f"/?classroom={ROOM}"
            assert browser.evaluate("document.getElementById('classroom').value") == ROOM
            browser.mark_document()
            browser.evaluate(f"document.getElementById('token').value = {json.dumps(token)}; "
                             "document.querySelector('form').submit(); true")
            browser.wait_for_new_document()
            browser.wait_for("document.body.dataset.events !== undefined")
            assert browser.evaluate("location.pathname") == f"/classrooms/{ROOM}"
            page = json.loads(browser.evaluate(PAGE_FIGURES))
            assert page["events"] == expected["events"]
            assert page["shares"] == pytest.approx(expected["shares"], abs=1e-9)
            top = max(expected["shares"], key=expected["shares"].get)
            assert page["shown"][0].startswith(top) and f"mostly {top}" in page["headline"]
            assert page["bars"] >= 1 and page["rows"] == len(expected["timeline"])
            assert all(arch in page["models"] for arch in expected["models"])
            assert "uncertain" in page["uncertain"]
            assert ["Last 15 min", "true"] in page["buttons"] and len(page["buttons"]) == 4
            shot = os.environ.get("FERLITE_DASHBOARD_SCREENSHOT")
            if shot:
                browser.screenshot(Path(shot))
            # The window buttons are real buttons (keyboard: Tab, Enter) and change what is asked.
            five = "document.querySelector('#windows button[data-window=\"5 min\"]')"
            browser.evaluate(f"{five}.click(); true")
            browser.wait_for(f"{five}.getAttribute('aria-pressed') === 'true' && "
                             "document.getElementById('headline').textContent.includes('last 5 min')")
            assert browser.evaluate("document.querySelector('#windows button').tagName") == "BUTTON"
            # Live: a second clip while the page is open shows up without a reload.
            before = int(browser.evaluate("document.body.dataset.events"))
            stream(ROOM)
            browser.wait_for(f"Number(document.body.dataset.events) > {before}", timeout=30)
            # Nothing of another classroom: the page says so and draws nothing.
            browser.goto(f"{url}classrooms/{OTHER_ROOM}")
            browser.wait_for("document.getElementById('status').textContent.includes('may not read')")
            assert browser.evaluate("document.body.dataset.events") is None
            assert browser.evaluate("document.querySelectorAll('#timeline rect').length") == 0
    finally:
        assert up.stop() == 0, up.tail()
