"""``x0tta6bl4 twin what-if``: ask the digital twin what a failure would do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.errors import TopologyError
from x0tta6bl4.twin import TwinService, mesh_topology

__all__ = ["app"]

app = typer.Typer(help="The digital twin: what-if questions on the mesh.", no_args_is_help=True)


def _traffic(path: Path | None) -> dict[tuple[str, str], float] | None:
    if path is None:
        return None
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {(str(r["src"]), str(r["dst"])): float(r["mbps"]) for r in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TopologyError(
            f"cannot read traffic matrix {path}: {exc}",
            fix='write a JSON list like [{"src": "n1", "dst": "n4", "mbps": 20}]',
        ) from exc


@app.command("what-if")
def what_if(
    ctx: typer.Context,
    fail_link: Annotated[
        list[str] | None, typer.Option("--fail-link", help="Link to fail, e.g. n1-n2 (repeatable).")
    ] = None,
    fail_node: Annotated[
        list[str] | None, typer.Option("--fail-node", help="Node to fail (repeatable).")
    ] = None,
    topology: Annotated[
        Path | None, typer.Option(help="Topology JSON (default: the running mesh or settings).")
    ] = None,
    traffic: Annotated[
        Path | None, typer.Option(help='Traffic JSON: [{"src": .., "dst": .., "mbps": ..}].')
    ] = None,
    limit: Annotated[int, typer.Option(help="Pairs and links listed at most.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full answer as JSON.")] = False,
) -> None:
    """Predict what failing links or nodes does: lost pairs, moved paths, partitions, load."""
    settings = settings_of(ctx)
    topo, source = mesh_topology(settings, topology)
    service = TwinService(topo, limit=limit, max_nodes=settings.supervisor.twin_max_nodes)
    answer = service.what_if(
        fail_links=fail_link or [], fail_nodes=fail_node or [], traffic=_traffic(traffic)
    )
    if as_json:
        answer.pop("components")
        console.print_json(json.dumps(answer))
        return
    _print(answer, source)


def _print(a: dict[str, Any], source: str) -> None:
    console.print(
        f"[bold]what-if[/] on {a['nodes']} nodes ({source}): fail "
        f"{', '.join(a['failed_links'] + a['failed_nodes']) or 'nothing'}  ·  "
        f"{a['elapsed_ms']:.1f} ms"
    )
    summary = Table(show_header=False)
    summary.add_row("links affected", str(a["links_affected"]))
    summary.add_row(
        "pairs losing reachability",
        f"[{'red' if a['lost_pairs'] else 'green'}]{a['lost_pairs']}[/]",
    )
    summary.add_row("pairs whose path or cost changes", str(a["changed_pairs"]))
    summary.add_row(
        "partitions created",
        f"{a['partitions_created']} {a['partitions'] if a['partitions'] else ''}",
    )
    summary.add_row(
        "reachable pairs", f"{a['reachable_pairs_before']} -> {a['reachable_pairs_after']}"
    )
    if a["overloaded_links"]:
        summary.add_row("overloaded links", ", ".join(a["overloaded_links"]))
    console.print(summary)
    if a["changed_pairs_sample"]:
        moved = Table(title="paths that change (sample)")
        for column in ("pair", "old cost", "new cost", "delta"):
            moved.add_column(column)
        for c in a["changed_pairs_sample"]:
            moved.add_row(
                f"{c['src']}-{c['dst']}",
                f"{c['old_cost']:g}",
                f"{c['new_cost']:g}",
                f"{c['delta']:+g}",
            )
        console.print(moved)
    if a["load_shift"]:
        load = Table(title=f"load shift ({a['load_unit']}, largest first)")
        load.add_column("link")
        load.add_column("shift", justify="right")
        for link, shift in a["load_shift"].items():
            load.add_row(link, f"{shift:+,.1f}")
        console.print(load)
