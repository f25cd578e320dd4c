"""``x0tta6bl4 ebpf``: what is attached, attach and detach by hand, and a live top.

These commands work on this host without Ray: they find our programs on the
interfaces (host and every named namespace) and read their maps by id, so
they also see what a running agent attached.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from x0tta6bl4.cli._common import console, settings_of
from x0tta6bl4.ebpf import _netlink as nl
from x0tta6bl4.ebpf._compile import missing_capabilities, require_bcc
from x0tta6bl4.ebpf._state import PERSISTENT, StateStore
from x0tta6bl4.ebpf.agent import build_reading
from x0tta6bl4.ebpf.collector import BatchMaker
from x0tta6bl4.ebpf.inventory import KernelAttachment, read_found, remove_recorded, scan
from x0tta6bl4.ebpf.loader import Loader
from x0tta6bl4.ebpf.names import Names, entity
from x0tta6bl4.ebpf.tracing import Tracepoints, read_drop_reasons
from x0tta6bl4.errors import AttachConflictError, X0Error
from x0tta6bl4.telemetry import TelemetryBatch

__all__ = ["app"]

app = typer.Typer(
    help="eBPF observability: attach counters, see rates and drop reasons.",
    no_args_is_help=True,
)

_Netns = Annotated[
    list[str] | None,
    typer.Option("--netns", "-n", help="Namespace to look in (repeatable; 'host' for the host)."),
]
_Programs = Annotated[
    list[str] | None, typer.Option("--program", "-p", help="xdp and/or tc (default: both).")
]


def _namespaces(netns: list[str] | None) -> list[str | None]:
    if netns:
        return [None if n == "host" else n for n in netns]
    try:
        named = sorted(p.name for p in nl.NETNS_DIR.iterdir())
    except OSError:
        named = []
    return [None, *named]


def _owner(found: KernelAttachment) -> str:
    if found.owner is None:
        return "[red]none (stale)[/]"
    if found.owner == PERSISTENT:
        return "persistent (ebpf attach)"
    return f"{found.owner} ({'running' if found.owner_alive else '[red]dead: stale[/]'})"


@app.command()
def status(ctx: typer.Context, netns: _Netns = None) -> None:
    """What x0tta6bl4 has attached on this host, who owns it, and whether eBPF works here."""
    store = StateStore(settings_of(ctx).ebpf.state_dir)
    found = scan(_namespaces(netns), store)
    table = Table(title=f"eBPF attachments ({len(found)})")
    for column in ("program", "interface", "mode", "programs", "owner"):
        table.add_column(column)
    for f in found:
        ids = f"ids {', '.join(map(str, f.prog_ids))}" if f.prog_ids else ""
        programs = f"{', '.join(f.names)} {ids}".strip()
        table.add_row(f.program.value, entity(f.netns, f.interface), f.mode, programs, _owner(f))
    console.print(table)
    for line in _readiness():
        console.print(line)


def _readiness() -> list[str]:
    lines = []
    try:
        require_bcc()
        lines.append("bcc: [green]importable[/]")
    except X0Error as exc:
        lines.append(f"bcc: [red]{exc.message}[/] — fix: {exc.fix}")
    missing = missing_capabilities()
    lines.append(
        f"privileges: [red]missing {', '.join(missing)}[/] — run as root"
        if missing
        else "privileges: [green]enough to load and attach[/]"
    )
    reasons = read_drop_reasons()
    lines.append(f"drop reasons known to this kernel (tracefs): {len(reasons)}")
    return lines


@app.command()
def attach(
    ctx: typer.Context,
    interface: Annotated[str, typer.Argument(help="Interface to attach to.")],
    program: _Programs = None,
    mode: Annotated[str, typer.Option(help="XDP mode: auto, hw, drv or skb.")] = "auto",
    netns: Annotated[str | None, typer.Option("--netns", "-n", help="Its namespace.")] = None,
) -> None:
    """Attach counting programs to INTERFACE and leave them attached (owner: persistent).

    `ebpf top` shows their counters; `ebpf detach` removes them.
    """
    loader = Loader(settings_of(ctx).ebpf.state_dir, owner=PERSISTENT)
    for name in program or ["xdp", "tc"]:
        with console.status(f"compiling and attaching {name}…"):
            done = loader.attach(name, interface, mode if name == "xdp" else "auto", netns=netns)
        tried = "".join(f"\n  {f.mode}: {f.reason}" for f in done.fallbacks)
        console.print(
            f"[green]attached[/] {name} to {entity(netns, interface)} in {done.mode} mode{tried}"
        )


@app.command()
def detach(
    ctx: typer.Context,
    interface: Annotated[str, typer.Argument(help="Interface to detach from.")],
    program: _Programs = None,
    netns: Annotated[str | None, typer.Option("--netns", "-n", help="Its namespace.")] = None,
) -> None:
    """Detach our programs from INTERFACE (idempotent). A running agent's are left alone."""
    store = StateStore(settings_of(ctx).ebpf.state_dir)
    wanted = set(program or ["xdp", "tc"])
    targets = [
        f for f in scan([netns], store) if f.interface == interface and f.program.value in wanted
    ]
    for found in targets:
        where = entity(found.netns, found.interface)
        if found.owner not in (None, PERSISTENT) and found.owner_alive:
            raise AttachConflictError(
                f"{found.program.value} on {where} belongs to running agent {found.owner}",
                fix="stop the agent (it detaches on exit), or disable ebpf for that interface",
            )
        key = (found.program.value, found.netns, found.interface)
        recorded = store.get(found.owner, key) if found.owner else None
        remove_recorded(recorded or found.record())
        if found.owner:
            store.remove(found.owner, key)
        console.print(f"detached {found.program.value} from {where}")
    if not targets:
        console.print(f"nothing of ours attached to {entity(netns, interface)}")


@app.command()
def top(
    ctx: typer.Context,
    netns: _Netns = None,
    interval_s: Annotated[float, typer.Option(help="Refresh interval in seconds.")] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    rows: Annotated[int, typer.Option(help="Drop reasons to show.")] = 12,
) -> None:
    """Live per-interface rates and drop reasons of everything attached on this host.

    Drops come from tracepoints this command loads while it runs (needs root).
    """
    store = StateStore(settings_of(ctx).ebpf.state_dir)
    namespaces = _namespaces(netns)
    tracepoints: Tracepoints | None = None
    try:
        tracepoints = Tracepoints()
    except X0Error as exc:
        console.print(f"[yellow]drop reasons unavailable:[/] {exc.message}")
    names, maker = Names(), BatchMaker("ebpf:top")
    deadline = None if duration is None else time.monotonic() + duration
    try:
        with Live(console=console, auto_refresh=False) as live:
            while deadline is None or time.monotonic() < deadline:
                found = scan(namespaces, store)
                attached = [(f.program, f.netns, f.interface, f.ifindex) for f in found]
                reading = build_reading(
                    time.time(), attached, read_found(found), tracepoints, names
                )
                batches, _ = maker.make(reading)
                live.update(_render(batches, rows), refresh=True)
                time.sleep(interval_s)
    except KeyboardInterrupt:
        pass
    finally:
        if tracepoints is not None:
            tracepoints.close()


def _fmt(value: float, scale: float = 1.0, digits: int = 0) -> str:
    return "-" if math.isnan(value) else f"{value / scale:,.{digits}f}"


def _render(batches: list[TelemetryBatch], rows: int) -> Any:
    by_kind = {b.kind: b for b in batches}
    iface = Table(title="interfaces: packets since attach, packets/s, Mbit/s")
    iface.add_column("interface", no_wrap=True)
    hooks = {"xdp": "xdp (rx)", "tc_ingress": "tc ingress", "tc_egress": "tc egress"}
    for title in hooks.values():
        iface.add_column(title, justify="right")
    batch = by_kind.get("iface")
    if batch is not None:
        for i, name in enumerate(batch.entity):
            cells = []
            for hook in hooks:
                m = {k: float(batch.metrics[f"{hook}_{k}"][i]) for k in _IFACE_FIELDS}
                cells.append(
                    f"{_fmt(m['packets'])} pkt\n{_fmt(m['packets_per_s'])} pps\n"
                    f"{_fmt(m['bytes_per_s'] * 8, 1e6, 2)} Mb/s"
                )
            iface.add_row(str(name), *cells)
    drops = Table(title="drop reasons (top by total)")
    for column in ("where / reason", "total", "per s"):
        drops.add_column(column, justify="left" if column.startswith("where") else "right")
    batch = by_kind.get("drop")
    if batch is not None:
        order = sorted(range(len(batch)), key=lambda i: -batch.metrics["drops"][i])[:rows]
        for i in order:
            drops.add_row(
                str(batch.entity[i]),
                _fmt(float(batch.metrics["drops"][i])),
                _fmt(float(batch.metrics["drops_per_s"][i]), digits=1),
            )
    return Group(iface, drops)


_IFACE_FIELDS = ("packets", "packets_per_s", "bytes_per_s")
