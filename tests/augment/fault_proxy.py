"""A small real HTTP proxy that injects faults in front of a real server (for the retry tests).

The first ``faults`` generation requests (``*/completions``) get, in turn, each reply in ``pattern``:
an HTTP status (429, 500, 503 ...) or ``"drop"`` (the connection is closed without a reply).
Everything else is forwarded to ``upstream`` unchanged.  Every generation request body is recorded.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class FaultProxy:
    def __init__(
        self, upstream: str, faults: int, pattern=(429, 500, "drop", 503), port: int = 0, die_after: int | None = None
    ):
        self.upstream = upstream.rstrip("/")  # e.g. http://127.0.0.1:PORT (no /v1)
        self.faults_left = faults
        self.pattern = list(pattern)
        self.lock = threading.Lock()
        self.injected: list = []
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.die_after = die_after  # a server process that exits after answering this many requests
        self.answered = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _next_fault(self):
        with self.lock:
            if self.faults_left <= 0:
                return None
            self.faults_left -= 1
            fault = self.pattern[len(self.injected) % len(self.pattern)]
            self.injected.append(fault)
            return fault

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_GET(self):  # health checks and model lists go straight through
                r = httpx.get(proxy.upstream + self.path, timeout=30)
                self._reply(r.status_code, r.content)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if not self.path.endswith("completions"):  # a pre-flight question (/tokenize): passed on as is
                    r = httpx.post(
                        proxy.upstream + self.path, content=body, headers={"content-type": "application/json"}
                    )
                    self._reply(r.status_code, r.content)
                    return
                proxy.bodies.append(json.loads(body))
                proxy.headers.append(dict(self.headers))
                fault = proxy._next_fault()
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None:
                    self._reply(fault, b'{"error": "injected"}')
                    return
                r = httpx.post(
                    proxy.upstream + self.path, content=body, headers={"content-type": "application/json"}, timeout=120
                )
                self._reply(r.status_code, r.content)
                with proxy.lock:
                    proxy.answered += 1
                    if proxy.die_after is not None and proxy.answered >= proxy.die_after:
                        self.wfile.flush()
                        os._exit(1)  # a dying engine: the whole server process goes at once

            def _reply(self, status: int, content: bytes):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        return Handler


if __name__ == "__main__":  # as a server process: python fault_proxy.py PORT UPSTREAM [FAULTS [DIE_AFTER]]
    import sys

    port, upstream = int(sys.argv[1]), sys.argv[2]
    faults = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    die_after = int(sys.argv[4]) if len(sys.argv) > 4 else None
    with FaultProxy(upstream, faults, port=port, die_after=die_after) as server:
        server.thread.join()
