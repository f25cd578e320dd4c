"""What the Supervisor needs from the mesh, and that seam over the in-process simulator.

:class:`MeshPort` is how Execute acts and how outcomes are observed: the
Supervisor actor implements it over the MeshNode actors; :class:`SimMeshPort`
over a :class:`~x0tta6bl4.mesh.sim.SimBackend` (tests, the twin benchmark).
Every ``apply`` is idempotent: a call that failed may still have taken
effect, so the loop may repeat it.  A restarted node forgets what the
Supervisor set on it (link costs, isolations); both ports keep those as
:class:`StandingOrders` and set the missing ones again every tick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from x0tta6bl4.errors import MeshError
from x0tta6bl4.mapek._types import Action, ActionKind, link_ends
from x0tta6bl4.mesh.ports import Fault, FaultKind, Route
from x0tta6bl4.mesh.sim import START_WALL, SimBackend
from x0tta6bl4.mesh.stats import NodeSnapshot
from x0tta6bl4.mesh.topology import Topology, link_key
from x0tta6bl4.telemetry import BatchBuilder, TelemetryBatch

__all__ = [
    "SUPERVISOR_REASON",
    "MeshPort",
    "PathObservation",
    "SimMeshPort",
    "StandingOrders",
    "follow_routes",
    "require_link_ends",
]

SUPERVISOR_REASON = "supervisor"
"""Reason given when the Supervisor isolates a node (told apart from the mesh's own flags)."""


@dataclass(frozen=True)
class PathObservation:
    """Where a packet from ``src`` to ``dst`` goes by the installed routes right now."""

    src: str
    dst: str
    reachable: bool
    path: tuple[str, ...]


@dataclass
class StandingOrders:
    """What the Supervisor set on the mesh and keeps set: a restarted node (Ray restarts
    a crashed MeshNode actor) comes back without its link-cost overrides and isolations."""

    costs: dict[tuple[str, str], float] = field(default_factory=dict)
    """(node, peer) -> the cost this Supervisor set on ``node``'s link to ``peer``."""
    isolated: set[str] = field(default_factory=set)
    """Nodes this Supervisor isolated: every other node refuses them as transit."""

    def lost_costs(self, snaps: Mapping[str, NodeSnapshot]) -> list[tuple[str, str]]:
        """(node, peer) whose cost the node, reporting in ``snaps``, no longer has."""
        return [
            (a, b)
            for (a, b), cost in self.costs.items()
            if a in snaps and snaps[a].overrides.get(b) != cost
        ]

    def lost_isolations(self, snaps: Mapping[str, NodeSnapshot]) -> list[tuple[str, str]]:
        """(node, isolated node) where the node, reporting in ``snaps``, no longer refuses it."""
        return [
            (name, target)
            for target in sorted(self.isolated)
            for name, snap in snaps.items()
            if name != target and SUPERVISOR_REASON not in snap.flagged.get(target, ())
        ]


class MeshPort(Protocol):
    supports: frozenset[ActionKind]

    async def apply(self, action: Action) -> None:
        """Carry out ``action`` (idempotent)."""
        ...

    async def flagged(self) -> dict[str, set[str]]:
        """Nodes suspected Byzantine by the mesh itself: node -> nodes that flag it.
        Called once a tick; also sets again the standing orders a node lost."""
        ...

    async def observe(self, pairs: Sequence[tuple[str, str]]) -> list[PathObservation]:
        """The live path of each pair (hop by hop along installed routes)."""
        ...


def follow_routes(
    routes: Mapping[str, Mapping[str, Route]],
    src: str,
    dst: str,
    alive: Iterable[str] | None = None,
    usable: set[str] | None = None,
) -> PathObservation:
    """Walk next hops from ``src`` towards ``dst``.

    Args:
        routes: each node's installed routes by destination.
        alive: nodes that forward (None: every node in ``routes``).
        usable: link keys that deliver (None: every link).
    """
    live = set(routes) if alive is None else set(alive)
    path = [src]
    seen = {src}
    cur = src
    while cur != dst:
        if cur not in live:
            return PathObservation(src, dst, False, tuple(path))
        route = routes.get(cur, {}).get(dst)
        if route is None or (usable is not None and link_key(cur, route.next_hop) not in usable):
            return PathObservation(src, dst, False, tuple(path))
        cur = route.next_hop
        path.append(cur)
        if cur in seen:
            return PathObservation(src, dst, False, tuple(path))
        seen.add(cur)
    return PathObservation(src, dst, dst in live, tuple(path))


class SimMeshPort:
    """Acts on a :class:`SimBackend` the way MeshNode actors act on the kernel mesh.

    The caller steps the simulator; every method here is quick and synchronous
    underneath (the async signatures match :class:`MeshPort`).
    """

    supports = frozenset(
        {
            ActionKind.RAISE_COST,
            ActionKind.ROUTE_AROUND_LINK,
            ActionKind.ISOLATE_NODE,
            ActionKind.RESTART_NODE,
        }
    )

    def __init__(self, sim: SimBackend) -> None:
        self.sim = sim
        self.applied: list[Action] = []
        self.standing = StandingOrders()

    @property
    def _topology(self) -> Topology:
        if self.sim.topology is None:
            raise MeshError("the simulated mesh is not up", fix="call sim.up(topology) first")
        return self.sim.topology

    async def apply(self, action: Action) -> None:
        topo, nodes = self._topology, self.sim.nodes
        if action.kind in (ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK):
            link = topo.link(*require_link_ends(action.target, topo.names))
            drain = action.kind is ActionKind.ROUTE_AROUND_LINK
            cost = math.inf if drain else link.cost * action.factor
            for a, b in (link.ends, link.ends[::-1]):
                self.standing.costs[a, b] = cost
                if a in nodes and a not in self.sim.crashed:
                    self.sim.set_link_cost(a, b, cost)
        elif action.kind is ActionKind.ISOLATE_NODE:
            self.standing.isolated.add(action.target)
            for name, logic in nodes.items():
                if name != action.target:
                    logic.isolate(action.target, SUPERVISOR_REASON)
        elif action.kind is ActionKind.RESTART_NODE:
            if action.target in self.sim.crashed:
                self.sim.heal(Fault(FaultKind.NODE_CRASH, (action.target,)))
            else:
                self.sim.restart(action.target)
        self.applied.append(action)

    async def flagged(self) -> dict[str, set[str]]:
        snaps = {
            name: logic.snapshot()
            for name, logic in self.sim.nodes.items()
            if name not in self.sim.crashed
        }
        for a, b in self.standing.lost_costs(snaps):
            self.sim.set_link_cost(a, b, self.standing.costs[a, b])
        for name, target in self.standing.lost_isolations(snaps):
            self.sim.nodes[name].isolate(target, SUPERVISOR_REASON)
        out: dict[str, set[str]] = {}
        for name, snap in snaps.items():
            for suspect, reasons in snap.flagged.items():
                if reasons != [SUPERVISOR_REASON] and suspect != name:
                    out.setdefault(suspect, set()).add(name)
        return out

    async def observe(self, pairs: Sequence[tuple[str, str]]) -> list[PathObservation]:
        routes = {name: sink.routes for name, sink in self.sim.sinks.items()}
        alive = set(self.sim.nodes) - self.sim.crashed
        usable = {key for key, link in self.sim.links.items() if link.delivers}
        return [follow_routes(routes, a, b, alive, usable) for a, b in pairs]

    def telemetry(self) -> list[TelemetryBatch]:
        """What the live nodes' MeshNode actors would ship now: link and node batches."""
        batches = []
        node_rows = BatchBuilder("sim", "node", ("links_up", "routes"))
        ts = START_WALL + self.sim.clock.now()
        for name, logic in sorted(self.sim.nodes.items()):
            if name in self.sim.crashed:
                continue
            link = logic.link_batch()
            if len(link):
                batches.append(link)
            ups = link.metrics["up"] if len(link) else np.zeros(0)
            node_rows.add(ts, name, (float(ups.sum()), float(len(self.sim.sinks[name].routes))))
        if len(node_rows):
            batches.append(node_rows.build())
        return batches


def require_link_ends(key: str, names: Sequence[str]) -> tuple[str, str]:
    ends = link_ends(key, set(names))
    if ends is None:
        raise MeshError(f"{key!r} does not name a link of the mesh", fix="write links as a-b")
    return ends
