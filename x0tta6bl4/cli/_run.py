"""``x0tta6bl4 run``: the main job. Start what the flags enable, show it live, clean up."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from x0tta6bl4.actors.app import App, ComponentState
from x0tta6bl4.cli._common import console, settings_of

__all__ = ["run", "serve"]

_STATE_STYLE = {"running": "green", "off": "dim", "failed": "red", "stopped": "yellow"}


def run(
    ctx: typer.Context,
    address: Annotated[
        str | None, typer.Option(help="Join this Ray cluster instead of starting a local one.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    refresh_s: Annotated[float, typer.Option(help="Status refresh interval.")] = 1.0,
) -> None:
    """Start local Ray (or join --address), bring up the enabled capabilities, run until
    Ctrl-C or --duration, then tear everything down."""
    serve(App(settings_of(ctx), address), duration, refresh_s)
    console.print("\nstopped; nothing left running")


def serve(
    app: App,
    duration: float | None,
    refresh_s: float = 1.0,
    on_started: Callable[[App], None] | None = None,
) -> None:
    """Start ``app``, show its live status until Ctrl-C, SIGTERM or ``duration``, stop it."""
    stop_requested = False

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    previous = signal.signal(signal.SIGTERM, _request_stop)
    try:
        with console.status("starting…") as spinner:
            app.start(on_progress=lambda msg: spinner.update(f"{msg}…"))
        info = app.ray_info
        if info is not None:
            console.print(
                f"Ray at [bold]{info.address}[/] namespace [bold]{info.namespace}[/]"
                f" dashboard {info.dashboard_url or 'off'}"
            )
        if on_started is not None:
            on_started(app)
        deadline = None if duration is None else time.monotonic() + duration
        with Live(_status_table(app.status(), 0.0), console=console, auto_refresh=False) as live:
            while not stop_requested and (deadline is None or time.monotonic() < deadline):
                time.sleep(min(refresh_s, max(0.0, (deadline or 1e18) - time.monotonic())))
                live.update(
                    _status_table(app.status(), time.monotonic() - (app.started_at or 0)),
                    refresh=True,
                )
    except KeyboardInterrupt:
        console.print("interrupted")
    finally:
        signal.signal(signal.SIGTERM, previous)
        with console.status("stopping…"):
            app.stop()


def _status_table(states: list[ComponentState], uptime_s: float) -> Table:
    table = Table(title=f"x0tta6bl4 — up {uptime_s:,.0f} s")
    table.add_column("component")
    table.add_column("state")
    table.add_column("detail")
    for st in states:
        detail = st.error or ", ".join(f"{k}={v}" for k, v in st.detail.items())
        style = _STATE_STYLE.get(st.state, "")
        table.add_row(st.name, f"[{style}]{st.state}[/]", detail)
    return table
