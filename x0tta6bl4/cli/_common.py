"""State and helpers shared by the sub-commands."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import typer
from rich.console import Console

from x0tta6bl4 import loggers
from x0tta6bl4.config import Settings, load_settings, parse_overrides

__all__ = ["CliState", "console", "console_err", "settings_of"]

console = Console()
console_err = Console(stderr=True)


@dataclass
class CliState:
    """Global options, parsed once by the root callback."""

    config_file: Path | None = None
    overrides: list[str] = field(default_factory=list)
    log_format: str | None = None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, parse_overrides(self.overrides))
            loggers.configure_logging(
                self.log_format or self._settings.log.format,  # type: ignore[arg-type]
                self._settings.log.level,
            )
        return self._settings


def settings_of(ctx: typer.Context) -> Settings:
    """The effective settings for this invocation (loaded on first use)."""
    state = ctx.find_root().obj
    if not isinstance(state, CliState):
        state = CliState()
        ctx.find_root().obj = state
    return state.settings()
