"""A real browser for the tests: Debian's headless Chromium, driven over the DevTools protocol.

`Browser` starts Chromium with a throw-away profile and a debugging port of its own choosing
(read back from DevToolsActivePort), opens one page and lets a test navigate, run JavaScript in
the page and take a screenshot. Nothing is mocked: the page's scripts, styles, cookies and fetch
calls run as they would for a teacher.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp


class BrowserError(RuntimeError):
    pass


class Browser:
    def __init__(self, chromium: str, profile: Path, width: int = 1100, height: int = 900) -> None:
        self.chromium, self.profile = chromium, profile
        self.size = (width, height)
        self.proc: subprocess.Popen | None = None
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None
        self._ws: Any = None
        self._page = ""

    def __enter__(self) -> Browser:
        self.profile.mkdir(parents=True, exist_ok=True)
        args = [self.chromium, "--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-dev-shm-usage", "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}", f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run its sandbox as root (CI containers)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        self._run(self._connect(f"ws://127.0.0.1:{port}{path}"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._session is not None:
            self._run(self._session.close())
            self._session = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._loop.close()

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    async def _connect(self, url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, max_msg_size=64 * 2**20)
        target = await self._call("Target.createTarget", {"url": "about:blank"})
        attached = await self._call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        self._page = attached["sessionId"]
        await self._call("Page.enable", session=self._page)
        await self._call("Runtime.enable", session=self._page)

    async def _call(self, method: str, params: dict | None = None, session: str = "") -> dict:
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        await self._ws.send_str(json.dumps(message))
        while True:
            reply = await asyncio.wait_for(self._ws.receive_json(), 30)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def call(self, method: str, params: dict | None = None) -> dict:
        """A DevTools command on the page."""
        return self._run(self._call(method, params, self._page))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def goto(self, url: str, timeout: float = 30) -> None:
        """Open `url` and wait until the document it ends at (after any redirect) has loaded."""
        self.mark_document()
        self.call("Page.navigate", {"url": url})
        self.wait_for_new_document(timeout)

    def mark_document(self) -> None:
        """Mark the current document, so that `wait_for_new_document` can tell when it is replaced."""
        self.evaluate("window.__ferliteOld = true")

    def wait_for_new_document(self, timeout: float = 30) -> None:
        self.wait_for("!window.__ferliteOld && document.readyState === 'complete'", timeout)

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except BrowserError:
                value = None  # e.g. the page is between two documents
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"not true within {timeout:.0f} s: {expression}")
            time.sleep(0.2)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        path.write_bytes(base64.b64decode(data))
        return path
