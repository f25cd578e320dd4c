"""``x0tta6bl4 incidents``: what the Supervisor saw, decided, did, and whether it worked.

Reads the Supervisor's Knowledge file directly (SQLite in WAL mode lets it
read while the Supervisor writes), so it works with or without a running Ray.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.config import Settings
from x0tta6bl4.mapek.assemble import knowledge_path
from x0tta6bl4.mapek.knowledge import IncidentRow, Knowledge

__all__ = ["app", "open_knowledge"]

app = typer.Typer(help="Incidents: symptom, root cause, action, outcome, time to heal.")

_STATE_STYLE = {"open": "yellow", "escalated": "red", "healed": "green", "cleared": "cyan"}


def open_knowledge(settings: Settings) -> Knowledge | None:
    """The Supervisor's Knowledge, or None when it never ran with these settings."""
    path = knowledge_path(settings)
    if not path.exists():
        console.print(
            f"no knowledge base at {path} yet: the Supervisor creates it when it runs "
            "(`x0tta6bl4 run`)"
        )
        return None
    return Knowledge(path)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _heal(row: IncidentRow) -> str:
    seconds = row.time_to_heal_s
    return "-" if seconds is None else f"{seconds:,.1f} s"


@app.callback(invoke_without_command=True)
def incidents(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="Newest incidents shown.")] = 20,
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents not closed.")] = False,
) -> None:
    """List incidents, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    kb = open_knowledge(settings_of(ctx))
    if kb is None:
        return
    rows = kb.incidents(limit=limit, open_only=open_only)
    kb.close()
    table = Table(title=f"incidents ({len(rows)} shown)")
    for column in ("id", "when", "symptom", "root cause", "action", "outcome", "time to heal"):
        table.add_column(column, overflow="fold")
    for row in rows:
        style = _STATE_STYLE.get(row.state, "")
        outcome = row.action_state or "-"
        if row.success is not None:
            outcome = "[green]worked[/]" if row.success else "[red]did not work[/]"
        table.add_row(
            str(row.id),
            _when(row.opened_at),
            row.symptom,
            f"{row.kind} [bold]{row.root_cause}[/] ({row.confidence:.0%}, {row.source})",
            row.action or "-",
            f"{outcome} [{style}]{row.state}[/]",
            _heal(row),
        )
    console.print(table)


@app.command()
def show(
    ctx: typer.Context,
    incident: Annotated[int, typer.Argument(help="Incident id (see `x0tta6bl4 incidents`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One incident: root cause with its explanation, evidence, every action and outcome."""
    kb = open_knowledge(settings_of(ctx))
    if kb is None:
        return
    row, symptoms, actions = kb.incident(incident)
    kb.close()
    if as_json:
        console.print_json(
            json.dumps({"incident": row.__dict__, "symptoms": symptoms, "actions": actions})
        )
        return
    console.print(
        Panel(
            f"[bold]{row.kind}[/] at [bold]{row.root_cause}[/] "
            f"(confidence {row.confidence:.0%}, by {row.source})\n\n{row.explanation}",
            title=f"incident {row.id} · {row.state} · opened {_when(row.opened_at)}"
            f" · time to heal {_heal(row)}",
        )
    )
    evidence = Table(title="evidence (strongest first)")
    for column in ("entity", "metric", "value", "baseline", "z"):
        evidence.add_column(column)
    for s in symptoms[:15]:
        evidence.add_row(
            s["entity"],
            s["metric"],
            f"{s['value']:.3g}",
            f"{s['baseline']:.3g}",
            f"{s['score']:+.1f}",
        )
    console.print(evidence)
    done = Table(title="actions")
    for column in ("action", "score", "predicted", "state", "outcome"):
        done.add_column(column, overflow="fold")
    for a in actions:
        p = a["prediction"]
        predicted = (
            f"lost {p.get('lost_pairs', 0)}, moved {p.get('changed_pairs', 0)}, "
            f"partitions {p.get('partitions_created', 0)}"
        )
        target = f" {a['target']}" if a["target"] else ""
        done.add_row(
            f"{a['kind']}{target}", f"{a['score']:.3f}", predicted, a["state"], a["detail"] or "-"
        )
    console.print(done)
