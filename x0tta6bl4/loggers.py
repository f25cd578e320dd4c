"""Every logger of x0tta6bl4, and the one function that configures output.

Library code logs through the loggers below with structured fields and binds
context once (``log = loggers.mesh.bind(node="n3")``).  Only entry points (the
CLI, the SDK's ``connect``, actor start-up) call :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

__all__ = [
    "app",
    "bot",
    "configure_logging",
    "ebpf",
    "get_logger",
    "identity",
    "mesh",
    "ml",
    "ops",
    "payments",
    "supervisor",
    "twin",
]


_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def get_logger(name: str) -> Any:
    """A structlog logger over the stdlib logger ``x0tta6bl4.<name>``.

    Loggers are wrapped one by one instead of configuring structlog globally,
    so importing x0tta6bl4 changes nothing in the host application's logging:
    until an entry point calls :func:`configure_logging`, events go wherever
    the application's stdlib logging sends them (never to stdout).
    """
    return structlog.wrap_logger(
        logging.getLogger(f"x0tta6bl4.{name}"),
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


app = get_logger("app")
mesh = get_logger("mesh")
supervisor = get_logger("supervisor")
twin = get_logger("twin")
ml = get_logger("ml")
ebpf = get_logger("ebpf")
payments = get_logger("payments")
bot = get_logger("bot")
identity = get_logger("identity")
ops = get_logger("ops")


def configure_logging(
    fmt: Literal["auto", "json", "console"] = "auto", level: str = "info"
) -> None:
    """Route structlog and stdlib logging to stderr as JSON or readable lines.

    ``auto`` picks readable lines when stderr is a terminal, JSON otherwise.
    Safe to call more than once; the last call wins.
    """
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if json_output else _identity,
                renderer,
            ],
            foreign_pre_chain=_SHARED_PROCESSORS,
        )
    )
    root = logging.getLogger("x0tta6bl4")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _identity(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    return event
