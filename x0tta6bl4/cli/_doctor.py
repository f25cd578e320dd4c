"""``x0tta6bl4 doctor``: a table of what this machine can do, with a fix for each gap."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from x0tta6bl4.cli._common import console
from x0tta6bl4.ops.doctor import run_checks


def doctor(
    skip_ray: Annotated[
        bool, typer.Option(help="Skip the Ray start check (saves seconds).")
    ] = False,
) -> None:
    """Check privileges, namespaces, bcc, kernel headers, XDP/TC, Ray and the GPU.

    Exits 1 when a required check fails; optional ones only turn features off."""
    with console.status("checking…"):
        checks = run_checks(include_ray=not skip_ray)
    table = Table(title="x0tta6bl4 doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    table.add_column("fix")
    for check in checks:
        mark = (
            "[green]ok[/]" if check.ok else ("[red]FAIL[/]" if check.required else "[yellow]off[/]")
        )
        table.add_row(check.name, mark, check.detail, "" if check.ok else check.fix)
    console.print(table)
    failed = [c.name for c in checks if c.required and not c.ok]
    if failed:
        console.print(f"[red]required checks failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)
