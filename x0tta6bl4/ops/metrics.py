"""Prometheus exporter on the driver; actors report through Ray's own metrics."""

from __future__ import annotations

import socket
from typing import Any

from prometheus_client import REGISTRY, Gauge, start_http_server

from x0tta6bl4 import loggers
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ConfigError

__all__ = ["MetricsExporter"]

log = loggers.ops

UP = Gauge("x0tta6bl4_up", "1 while x0tta6bl4 runs on this driver", registry=REGISTRY)


class MetricsExporter:
    """Serves ``/metrics`` for Prometheus on ``metrics.port`` (0: any free port)."""

    name = "metrics"

    def __init__(self, settings: Settings) -> None:
        self.requested_port = settings.metrics.port
        self.port: int | None = None
        self._server: Any = None
        self._thread: Any = None

    def start(self, ray_info: object) -> None:
        port = self.requested_port or _free_port()
        try:
            self._server, self._thread = start_http_server(port, addr="127.0.0.1")
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on 127.0.0.1:{port}: {exc.strerror}",
                fix="pick another port with --set metrics.port=N (0 picks a free one)",
            ) from exc
        self.port = port
        UP.set(1)
        log.info("metrics_serving", url=self.url)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def status(self) -> dict[str, Any]:
        return {"url": self.url}

    def stop(self) -> None:
        UP.set(0)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
