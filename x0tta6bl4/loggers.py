"""Every logger of x0tta6bl4, and the one function that configures output.

Library code logs through the loggers below with structured fields and binds
context once (``log = loggers.mesh.bind(node="n3")``).  Only entry points (the
CLI, the SDK's ``connect``, actor start-up) call :func:`configure_logging`.
"""

from __future__ import annotations

import logging
import sys
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


def get_logger(name: str) -> Any:
    """A structlog logger named ``x0tta6bl4.<name>``."""
    return structlog.get_logger(f"x0tta6bl4.{name}")


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

_SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


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
    structlog.configure(
        processors=[
            *_SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
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


def _identity(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    return event
