"""KernelRouteSink's write plan: which netlink writes a change becomes, and in what order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from x0tta6bl4.errors import X0Error
from x0tta6bl4.mesh.kernel_routes import (
    BACKUP_METRIC,
    PRIMARY_METRIC,
    KernelRoutes,
    KernelRouteSink,
    NextHop,
    Write,
)
from x0tta6bl4.mesh.ports import Route


class RecordingRoutes(KernelRoutes):
    """Records the writes instead of sending them (the netlink side is tested on real
    namespaces in tests/integration/test_mesh_kernel.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, str, int]] = []

    def write(self, ipr: Any, writes: Sequence[Write]) -> list[X0Error | None]:
        for dst, metric, hop, _source in writes:
            if hop is None:
                self.writes.append(("delete", dst, metric))
            else:
                self.writes.append(("replace", f"{dst} via {hop.gateway}", metric))
        return [None] * len(writes)


class InlineWorker:
    def submit(self, fn: Callable[[Any], Any]) -> None:
        fn(None)


def sink() -> tuple[KernelRouteSink, RecordingRoutes]:
    routes = RecordingRoutes()
    hops = {"x": NextHop("x0-x", "gx"), "y": NextHop("x0-y", "gy")}
    dests = {"a": "A", "b": "B", "c": "C"}
    return KernelRouteSink(InlineWorker(), hops, dests, routes=routes), routes  # type: ignore[arg-type]


def test_a_batch_writes_every_primary_before_any_backup_or_removal() -> None:
    s, routes = sink()
    s.apply([Route("c", "x", 1.0)], [])
    routes.writes.clear()
    s.apply([Route("a", "x", 1.0, backup="y"), Route("b", "y", 1.0, backup="x")], ["c"])
    assert routes.writes == [
        ("replace", "A via gx", PRIMARY_METRIC),
        ("replace", "B via gy", PRIMARY_METRIC),
        ("replace", "A via gy", BACKUP_METRIC),
        ("replace", "B via gx", BACKUP_METRIC),
        ("delete", "C", PRIMARY_METRIC),  # c had no backup: one delete
    ]


def test_only_what_changed_is_written() -> None:
    s, routes = sink()
    s.apply([Route("a", "x", 1.0, backup="y")], [])
    routes.writes.clear()
    s.apply([Route("a", "x", 2.0)], [])  # same primary, the backup is gone
    assert routes.writes == [("delete", "A", BACKUP_METRIC)]
    routes.writes.clear()
    s.apply([Route("a", "y", 2.0, backup="y")], [])  # a backup equal to the primary is none
    assert routes.writes == [("replace", "A via gy", PRIMARY_METRIC)]
    assert s.installed()["a"] == Route("a", "y", 2.0, backup="y")
