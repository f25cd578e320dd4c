"""Fault cases recorded on the real netns mesh: namespaces, veth links, UDP hellos, routes.

:func:`record_netns_cases` brings a topology up as network namespaces
(:class:`~x0tta6bl4.mesh.netns.NetnsBackend`), runs every node's real control
plane (:class:`~x0tta6bl4.mesh.service.NodeService`: hellos, link state,
kernel routes) on an event loop in a helper thread, waits until every link is
up, and records each fault with :func:`~x0tta6bl4.ml.scenarios.record.record_case`
from what the nodes measure: per link the round-trip time and loss of the
hellos (mean of both ends' views; a node that measures nothing adds nothing)
and per node the number of links it sees up.  Loss, link-down and node-crash
faults go through nftables; delay needs ``netem``, which this kernel may lack.
Everything is taken down again, also on errors.  Needs root.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from x0tta6bl4 import loggers
from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import MeshError, MLError
from x0tta6bl4.mesh.linkmon import LinkState
from x0tta6bl4.mesh.netns import NetnsBackend
from x0tta6bl4.mesh.node import NodeSnapshot
from x0tta6bl4.mesh.ports import Fault
from x0tta6bl4.mesh.service import NodeService, node_specs
from x0tta6bl4.mesh.topology import Topology, link_key
from x0tta6bl4.ml.scenarios.case import Case
from x0tta6bl4.ml.scenarios.record import record_case

__all__ = ["record_netns_cases", "snapshot_row"]

log = loggers.ml
_READY_TIMEOUT_S = 120.0


def snapshot_row(snapshots: Sequence[NodeSnapshot]) -> dict[str, float]:
    """One metrics sample from the nodes' snapshots (see the module doc)."""
    rtt: dict[str, list[float]] = {}
    loss: dict[str, list[float]] = {}
    row: dict[str, float] = {}
    for snap in snapshots:
        up = 0
        for link in snap.links:
            key = link_key(snap.node, link.neighbor)
            loss.setdefault(key, []).append(float(link.loss))
            if link.rtt_ms is not None:
                rtt.setdefault(key, []).append(float(link.rtt_ms))
            up += link.state is LinkState.UP
        row[f"{snap.node}:links_up"] = float(up)
    for key, values in loss.items():
        row[f"{key}:loss"] = sum(values) / len(values)
    for key, values in rtt.items():
        row[f"{key}:rtt_ms"] = sum(values) / len(values)
    return row


class _LiveMesh:
    """Node services of one netns mesh on an event loop in a daemon thread."""

    def __init__(
        self, backend: NetnsBackend, topology: Topology, mesh: MeshSettings, data_dir: Path
    ):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="ml-netns-mesh", daemon=True
        )
        self.thread.start()
        plan = backend._require_plan()
        self.services = [
            NodeService(spec, mesh, data_dir) for spec in node_specs(topology, plan).values()
        ]

    def call(self, coro: Callable[[], object], timeout_s: float = 30.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro(), self.loop).result(timeout_s)  # type: ignore[arg-type]

    def start(self) -> None:
        async def start_all() -> None:
            await asyncio.gather(*(s.start() for s in self.services))

        self.call(start_all, _READY_TIMEOUT_S)

    def snapshots(self) -> list[NodeSnapshot]:
        async def take() -> list[NodeSnapshot]:
            return [s.snapshot() for s in self.services if s.logic is not None]

        return self.call(take)  # type: ignore[return-value]

    def all_links_up(self) -> bool:
        return all(link.state is LinkState.UP for snap in self.snapshots() for link in snap.links)

    def stop(self) -> None:
        async def stop_all() -> None:
            await asyncio.gather(
                *(s.stop(flush_routes=True) for s in self.services), return_exceptions=True
            )

        try:
            self.call(stop_all)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise MLError(
                f"the netns mesh did not get {what} within {timeout_s:g} s",
                fix="see `x0tta6bl4 doctor`",
            )
        time.sleep(0.2)


def record_netns_cases(
    topology: Topology,
    faults: Sequence[Fault],
    data_dir: Path,
    *,
    run_id: str | None = None,
    before_s: float = 20.0,
    after_s: float = 12.0,
    interval_s: float = 0.5,
    progress: Callable[[int], None] | None = None,
) -> list[Case]:
    """Record one case per fault on a netns mesh of ``topology`` (see the module doc)."""
    backend = NetnsBackend(data_dir, run_id=run_id)
    # slower hellos and more patience than the defaults: a recording must survive a busy host
    mesh_settings = MeshSettings(
        byzantine=False, failover=False, probe_interval_s=0.1, miss_threshold=5
    )
    try:
        backend.up(topology)
    except MeshError as exc:
        raise MLError(f"cannot bring the netns mesh up: {exc.message}", fix=exc.fix) from exc
    live: _LiveMesh | None = None
    cases: list[Case] = []
    try:
        live = _LiveMesh(backend, topology, mesh_settings, data_dir)
        live.start()
        _wait(live.all_links_up, _READY_TIMEOUT_S, "every link up")
        for i, fault in enumerate(faults):
            case = record_case(
                backend,
                topology,
                fault,
                lambda: snapshot_row(live.snapshots()),
                before_s=before_s,
                after_s=after_s,
                interval_s=interval_s,
            )
            case.source = "netns"
            cases.append(case)
            log.info(
                "netns_case_recorded", index=i, fault=str(fault.kind), location=case.label.location
            )
            _wait(live.all_links_up, _READY_TIMEOUT_S, "every link back up after the fault")
            if progress is not None:
                progress(i + 1)
    finally:
        if live is not None:
            live.stop()
        backend.down()
    return cases
