"""``x0tta6bl4 config show``: the effective configuration and where each value came from."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from x0tta6bl4.cli._common import CliState, console
from x0tta6bl4.config import describe_settings, parse_overrides

app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)

_SOURCE_STYLE = {"default": "dim", "file": "cyan", "env": "yellow", "cli": "green"}


@app.command("show")
def show(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print every setting, its value (secrets masked) and its source."""
    state = ctx.find_root().obj or CliState()
    rows = describe_settings(state.config_file, parse_overrides(state.overrides))
    if as_json:
        payload = {r.key: {"value": _plain(r.value), "source": r.source} for r in rows}
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title="x0tta6bl4 configuration")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("source")
    for row in rows:
        style = _SOURCE_STYLE[row.source]
        table.add_row(row.key, str(_plain(row.value)), f"[{style}]{row.source}[/]")
    console.print(table)


def _plain(value: object) -> object:
    if isinstance(value, str | int | float | bool | list) or value is None:
        return value
    return str(value)
