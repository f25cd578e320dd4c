"""``x0tta6bl4 status``: the mesh's health at a glance.

From the Supervisor's Knowledge (open incidents, how the last ones went,
what has worked) and the mesh run recorded under ``data_dir``; with
``--address`` also the live Supervisor (telemetry rate, loop lag, queue).
"""

from __future__ import annotations

import statistics
from typing import Annotated, Any

import typer
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.cli._incidents import open_knowledge
from x0tta6bl4.twin import mesh_topology

__all__ = ["status"]


def status(
    ctx: typer.Context,
    address: Annotated[
        str | None, typer.Option(help="Ask the live Supervisor on this Ray cluster (e.g. auto).")
    ] = None,
) -> None:
    """Mesh health at a glance: nodes, open incidents, healing record, live Supervisor."""
    settings = settings_of(ctx)
    topo, source = mesh_topology(settings)
    table = Table(title="x0tta6bl4 status", show_header=False)
    table.add_row("mesh", f"{len(topo)} nodes, {len(topo.links)} links ({source})")
    kb = open_knowledge(settings)
    if kb is not None:
        rows = kb.incidents(limit=200)
        counts = kb.counts()
        effectiveness = kb.effectiveness()
        kb.close()
        open_rows = [r for r in rows if r.closed_at is None]
        health = (
            "[green]healthy[/]" if not open_rows else f"[red]{len(open_rows)} open incident(s)[/]"
        )
        table.add_row("health", health)
        for r in open_rows[:5]:
            table.add_row("", f"#{r.id} {r.kind} {r.root_cause} ({r.state})")
        healed = [
            r.time_to_heal_s for r in rows if r.state == "healed" and r.time_to_heal_s is not None
        ]
        if healed:
            table.add_row(
                "healing",
                f"{len(healed)} healed, median {statistics.median(healed):.1f} s, "
                f"worst {max(healed):.1f} s",
            )
        table.add_row(
            "knowledge",
            f"{counts['incidents']} incidents, {counts['actions']} actions, "
            f"{counts['baselines']} baselines",
        )
        if effectiveness:
            best = sorted(effectiveness.items(), key=lambda kv: -kv[1])[:3]
            table.add_row("what works", ", ".join(f"{a} on {d}: {v:.0%}" for (a, d), v in best))
    if address is not None:
        table.add_row("supervisor", _live(settings, address))
    console.print(table)


def _live(settings: Any, address: str) -> str:
    import ray

    from x0tta6bl4.actors.runtime import ensure_ray
    from x0tta6bl4.actors.supervisor import SUPERVISOR_NAME

    info = ensure_ray(settings.ray, address)
    try:
        sup = ray.get_actor(SUPERVISOR_NAME, namespace=info.namespace)
    except ValueError:
        return "[yellow]not running[/]"
    s: dict[str, Any] = ray.get(sup.status.remote(), timeout=10)  # type: ignore[assignment]
    return (
        f"{s['ingest']['samples_per_s']:,.0f} samples/s, loop lag p99 "
        f"{s['loop_lag']['p99_ms']:.1f} ms, queue {s['queue']['queued']}/"
        f"{s['queue']['max_queued']} ({s['queue']['dropped']} dropped)"
    )
