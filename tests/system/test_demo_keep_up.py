"""Issue 28/30: the demo printed the dashboard's address of a stack it stopped a second later. With
--keep-up the stack stays up after the demo, listed like `ferlite up`'s: the dashboard shows the
demo's classroom, and `ferlite stop` ends it cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

from ferlite.app.sample_clip import make_clip
from ferlite.app.stack import StackConfig, free_port_offset
from tests.support.procs import ROOT


def test_the_demo_can_leave_its_stack_up_for_the_dashboard(tmp_path) -> None:
    offset = free_port_offset()
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    clip = make_clip(tmp_path / "clip.mp4", seconds=1.0, scenes="portrait")
    data = tmp_path / "var"
    demo = subprocess.Popen([sys.executable, "-m", "ferlite", "demo", "--video", str(clip), "--keep-up",
                             "--port-offset", str(offset), "--data-dir", str(data)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 240
        while not any(line.startswith("the stack stays up") for line in lines):
            assert demo.poll() is None and time.monotonic() < deadline, "".join(lines[-30:])
            time.sleep(0.2)
        port = StackConfig.with_port_offset(offset).dashboard_port
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/classrooms/demo-classroom/summary?window=600",
            headers={"Authorization": f"Bearer {(data / 'auth-token').read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read())["events"] > 0
        stop = subprocess.run([sys.executable, "-m", "ferlite", "stop", "--port-offset", str(offset)], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=120)
        assert stop.returncode == 0, stop.stderr
        assert demo.wait(60) == 0, "".join(lines[-30:])
    finally:
        if demo.poll() is None:
            demo.kill()
