"""The ``x0tta6bl4`` command: one entry point, one sub-command module per area."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from x0tta6bl4 import loggers
from x0tta6bl4._version import __version__
from x0tta6bl4.cli import (
    _bot,
    _config,
    _doctor,
    _ebpf,
    _incidents,
    _mesh,
    _ml,
    _node,
    _payments,
    _run,
    _status,
    _twin,
)
from x0tta6bl4.cli._common import CliState, console_err
from x0tta6bl4.errors import X0Error

__all__ = ["app", "main"]

app = typer.Typer(
    name="x0tta6bl4",
    help="Self-healing mesh network platform on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(_config.app, name="config")
app.add_typer(_ebpf.app, name="ebpf")
app.command("doctor")(_doctor.doctor)
app.command("run")(_run.run)
app.add_typer(_ml.app, name="ml")
app.command("rca")(_ml.rca)
app.command("bot")(_bot.bot)
app.add_typer(_node.app, name="node")
app.add_typer(_mesh.app, name="mesh")
app.add_typer(_payments.app, name="payments")
app.add_typer(_incidents.app, name="incidents")
app.add_typer(_twin.app, name="twin")
app.command("status")(_status.status)


@app.callback()
def _global_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML or YAML config file.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a setting: --set mesh.nodes=8 (repeatable)."),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="Log output: auto, json or console.")
    ] = None,
) -> None:
    ctx.obj = CliState(config_file=config, overrides=overrides or [], log_format=log_format)


@app.command()
def version() -> None:
    """Print the version of x0tta6bl4."""
    typer.echo(__version__)


def main() -> None:
    """Console-script entry point: X0Error becomes a message and exit code 1."""
    loggers.configure_logging("console", "warning")
    try:
        app()
    except X0Error as exc:
        console_err.print(f"[bold red]error:[/] {exc.message}")
        if exc.fix:
            console_err.print(f"[bold]fix:[/] {exc.fix}")
        sys.exit(1)
