"""A threaded HTTP/1.1 server on loopback with a routing table and fault injection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Fault", "Request", "Response"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Response:
        return cls(status, json.dumps(payload).encode(), headers)


@dataclass
class Fault:
    """Answer the next ``count`` requests whose path starts with ``path`` with this."""

    status: int
    body: bytes
    count: int = 1
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Request], Response]


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-answer (a cancelled poll) is not an error here."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


class FakeServer:
    """Serves ``routes`` (``(method, path prefix) -> handler``) on 127.0.0.1."""

    service = "fake"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.delay_s = 0.0
        """Seconds every answer waits (a slow API)."""
        self._routes: list[tuple[str, str, Handler]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def route(self, method: str, prefix: str, handler: Handler) -> None:
        self._routes.append((method, prefix, handler))

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _dispatch(self, request: Request) -> Response:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self.lock:
            self.requests.append(request)
            for fault in self.faults:
                if fault.count > 0 and request.path.startswith(fault.path):
                    fault.count -= 1
                    return Response(fault.status, fault.body, fault.headers)
            for method, prefix, handler in self._routes:
                if method == request.method and request.path.startswith(prefix):
                    return handler(request)
        return self.not_found(request)

    def not_found(self, request: Request) -> Response:
        return Response.json(404, {"error": f"no route {request.method} {request.path}"})

    def start(self) -> Self:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as real servers do; else delayed ACKs cost 40 ms

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = fake._dispatch(Request(self.command, url.path, query, headers, body))
                self.send_response(response.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(response.body)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = _serve
            do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = _QuietServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name=f"fake-{self.service}",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def count(self, path_prefix: str) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix))
