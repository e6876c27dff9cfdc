"""An IN-MEMORY KUBERNETES API DOUBLE (no real kube-apiserver can run on this machine).

A tiny HTTP server that answers the two ConfigMap endpoints `ferlite ab` uses, in the real API's
wire format, so the real `kubernetes` Python client is exercised end to end:
  GET   /api/v1/namespaces/{ns}/configmaps/{name}
  PATCH /api/v1/namespaces/{ns}/configmaps/{name}   (strategic/merge patch of `data`)
Unknown objects get the API's 404 Status. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/configmaps/([^/?]+)")


class InMemoryKubernetesApi:
    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict[str, str]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.token = "test-token"
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else None
                double.requests.append((method, self.path, body))
                if self.headers.get("Authorization") != f"Bearer {double.token}":
                    return self._send(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "Unauthorized", "code": 401})
                match = PATH.match(self.path)
                key = (match.group(1), match.group(2)) if match else None
                if key not in double.configmaps:
                    return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404,
                                            "message": f'configmaps "{key[1] if key else "?"}" not found'})
                if method == "PATCH":
                    patch = json.loads(body or "{}")
                    double.configmaps[key].update(patch.get("data", {}))
                self._send(200, {"kind": "ConfigMap", "apiVersion": "v1",
                                 "metadata": {"name": key[1], "namespace": key[0]},
                                 "data": dict(double.configmaps[key])})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "double",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": self.token}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
        }))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
