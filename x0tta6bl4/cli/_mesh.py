"""``x0tta6bl4 mesh``: bring a mesh up, look at it, break it on purpose, heal it, clean up.

``mesh up`` runs in the foreground (like ``run``) and prints its run id; the
other commands work from any terminal on the run recorded under the data
directory (the newest, or ``--run ID``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.errors import MeshError

if TYPE_CHECKING:
    from x0tta6bl4.actors.app import App

__all__ = ["app"]

app = typer.Typer(help="Bring up, inspect, break and heal the mesh.", no_args_is_help=True)
fault_app = typer.Typer(
    help="Inject a reversible fault (recorded; undo with `mesh heal`).", no_args_is_help=True
)
app.add_typer(fault_app, name="fault")

RunOpt = Annotated[str | None, typer.Option("--run", help="Run id (default: the newest run).")]


@app.command()
def up(
    ctx: typer.Context,
    nodes: Annotated[int | None, typer.Option(help="Mesh nodes (default mesh.nodes).")] = None,
    topology: Annotated[
        str | None, typer.Option(help="ring, grid, ring_chords or waxman (default mesh.topology).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    address: Annotated[str | None, typer.Option(help="Join this Ray cluster.")] = None,
) -> None:
    """Start Ray and a mesh of MeshNode actors; show it until Ctrl-C; tear it all down."""
    from x0tta6bl4.actors.app import App
    from x0tta6bl4.cli._run import serve

    settings = settings_of(ctx)
    if nodes is not None:
        settings.mesh.nodes = nodes
    if topology is not None:
        settings.mesh.topology = topology  # type: ignore[assignment]
    settings.mesh.enabled = True
    serve(App(settings, address, only={"mesh"}), duration, on_started=_announce_run)
    console.print("mesh stopped; namespaces, routes and actors removed")


def _announce_run(app: App) -> None:
    for state in app.status():
        if state.error:
            raise MeshError(f"the mesh did not start: {state.error}")
        run_id = state.detail.get("run")
        if run_id:
            console.print(
                f"mesh [bold]{run_id}[/] up; "
                f"`x0tta6bl4 mesh status --run {run_id}` from another terminal"
            )


@app.command()
def status(ctx: typer.Context, run: RunOpt = None) -> None:
    """Nodes, link states, route counts and active faults of a netns run."""
    from x0tta6bl4.mesh.inspect import run_status

    report = run_status(settings_of(ctx).data_dir, run)
    table = Table(title=f"mesh run {report.run_id} ({len(report.nodes)} nodes)")
    for column in ("node", "namespace", "links up", "routes (proto)", "down links"):
        table.add_column(column)
    for row in report.nodes:
        table.add_row(
            row.node,
            row.namespace if row.exists else f"[red]{row.namespace} (gone)[/]",
            f"{row.links_up}/{row.links}",
            str(row.routes),
            ", ".join(row.down) or "-",
        )
    console.print(table)
    if report.faults:
        console.print("[bold]active faults:[/] " + "; ".join(report.faults))
    else:
        console.print("no active faults")


@app.command()
def routes(
    ctx: typer.Context,
    node: Annotated[str | None, typer.Argument(help="Only this node.")] = None,
    run: RunOpt = None,
) -> None:
    """Kernel routes the mesh installed (our protocol only), per node."""
    from x0tta6bl4.mesh.inspect import run_routes

    rows = run_routes(settings_of(ctx).data_dir, run, node)
    table = Table(title="mesh routes")
    for column in ("node", "destination", "address", "via", "dev", "role"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@app.command()
def clean(ctx: typer.Context, run: RunOpt = None) -> None:
    """Remove the namespaces, processes and state of one run, or of every run."""
    from x0tta6bl4.mesh.netns import clean as clean_runs

    report = clean_runs(settings_of(ctx).data_dir, run)
    console.print(
        f"removed {len(report.namespaces)} namespaces, killed {len(report.pids)} processes, "
        f"removed {len(report.state_files)} state files"
    )


@app.command()
def heal(
    ctx: typer.Context,
    fault_id: Annotated[str | None, typer.Argument(help="The fault to undo (e.g. f3).")] = None,
    all_faults: Annotated[bool, typer.Option("--all", help="Undo every active fault.")] = False,
    run: RunOpt = None,
) -> None:
    """Undo a fault by id, or all of them with --all."""
    from x0tta6bl4.actors.mesh_app import heal_faults

    if fault_id is None and not all_faults:
        raise MeshError("say which fault to heal", fix="pass its id (see `mesh status`) or --all")
    healed = heal_faults(settings_of(ctx), fault_id, run)
    console.print(f"healed {', '.join(healed) or 'nothing (no active faults)'}")


@app.command()
def cost(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="One end of the link, e.g. n1.")],
    b: Annotated[str, typer.Argument(help="The other end.")],
    value: Annotated[str, typer.Argument(help="A cost > 0, `drain`, or `clear`.")],
    address: Annotated[str, typer.Option(help="The Ray cluster running the mesh.")] = "auto",
    run: RunOpt = None,
) -> None:
    """Override the cost of link a-b at both ends (operator drain or preference)."""
    import math

    from x0tta6bl4.actors.mesh_app import set_link_cost
    from x0tta6bl4.actors.runtime import ensure_ray

    words: dict[str, float | None] = {"drain": math.inf, "clear": None}
    try:
        parsed = words[value.lower()] if value.lower() in words else float(value)
    except ValueError as exc:
        raise MeshError(
            f"link cost {value!r} is not a number", fix="pass e.g. 5, drain or clear"
        ) from exc
    settings = settings_of(ctx)
    ensure_ray(settings.ray, address)
    set_link_cost(settings, a, b, parsed, run)
    console.print(f"{a}-{b}: {'measured cost' if parsed is None else value}")


def _inject(
    ctx: typer.Context, kind: str, targets: list[str], value: str | None, run: str | None
) -> None:
    from x0tta6bl4.actors.mesh_app import inject_fault
    from x0tta6bl4.mesh.faults import parse_fault

    fault = parse_fault(kind, targets, value)
    fault_id = inject_fault(settings_of(ctx), fault, run)
    console.print(
        f"injected {fault_id}: {kind} {' '.join(fault.targets)}"
        f"{'' if value is None else ' ' + value}; undo with `mesh heal {fault_id}`"
    )


Node = Annotated[str, typer.Argument(help="A mesh node, e.g. n1.")]


@fault_app.command("link-down")
def link_down(ctx: typer.Context, a: Node, b: Node, run: RunOpt = None) -> None:
    """Both ends of the a-b link administratively down (carrier loss)."""
    _inject(ctx, "link-down", [a, b], None, run)


@fault_app.command()
def loss(
    ctx: typer.Context,
    a: Node,
    b: Node,
    percent: Annotated[str, typer.Argument(help="Loss, e.g. 30% or 100%.")],
    run: RunOpt = None,
) -> None:
    """Drop a share of packets at both ends (nftables); 100% is a silent failure."""
    _inject(ctx, "loss", [a, b], percent, run)


@fault_app.command()
def delay(
    ctx: typer.Context,
    a: Node,
    b: Node,
    ms: Annotated[str, typer.Argument(help="Added delay, e.g. 50ms.")],
    run: RunOpt = None,
) -> None:
    """Add delay at both ends (tc netem; needs a kernel with netem)."""
    _inject(ctx, "delay", [a, b], ms, run)


@fault_app.command("node-crash")
def node_crash(ctx: typer.Context, node: Node, run: RunOpt = None) -> None:
    """Every link of the node down (its actor is also killed by `mesh up`'s SDK handle)."""
    _inject(ctx, "node-crash", [node], None, run)


@fault_app.command()
def partition(
    ctx: typer.Context,
    side: Annotated[str, typer.Argument(help="Nodes of one side, comma-separated: n1,n2,n3.")],
    run: RunOpt = None,
) -> None:
    """Silently cut every link between the named nodes and the rest."""
    _inject(ctx, "partition", [side], None, run)
