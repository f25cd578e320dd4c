"""The seams of the mesh: what node logic needs from the world, and what a backend is.

``MeshNodeLogic`` (routing, probing, security; pure Python) talks to the world
only through :class:`Clock`, :class:`Transport` and :class:`RouteSink`, so the
same logic runs in a unit test, in the in-process simulator and in a Ray actor
over real sockets and netlink.  A :class:`Backend` builds a whole mesh from a
:class:`~x0tta6bl4.mesh.topology.Topology` (namespaces, a Ray node's real
interfaces, or memory) and injects faults into it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from x0tta6bl4.mesh.topology import Topology

__all__ = ["Backend", "Clock", "Fault", "FaultKind", "Route", "RouteSink", "Transport"]


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...


class Transport(Protocol):
    def send(self, neighbor: str, payload: bytes) -> None:
        """Send one datagram to ``neighbor`` over the direct link to it (never blocks)."""
        ...


@dataclass(frozen=True)
class Route:
    """Reach node ``dest`` through the direct neighbour ``next_hop`` at ``cost``; where the
    link to ``next_hop`` loses carrier, through ``backup`` (a loop-free alternate the
    forwarding plane switches to by itself, before the control plane hears of it)."""

    dest: str
    next_hop: str
    cost: float
    backup: str | None = None


class RouteSink(Protocol):
    def apply(self, install: Sequence[Route], remove: Sequence[str]) -> None:
        """Install or replace routes, and remove the routes to the named destinations."""
        ...

    def installed(self) -> Mapping[str, Route]:
        """Routes currently in place (after a restart: what the kernel still has)."""
        ...


class FaultKind(StrEnum):
    LINK_DOWN = "link-down"
    LOSS = "loss"
    DELAY = "delay"
    NODE_CRASH = "node-crash"
    PARTITION = "partition"


@dataclass(frozen=True)
class Fault:
    """One reversible fault. ``targets``: two node names for a link fault, one for a
    node, or the nodes of one side for a partition; ``value``: loss percent or delay ms."""

    kind: FaultKind
    targets: tuple[str, ...]
    value: float = 0.0


class Backend(Protocol):
    """Builds a mesh from a topology and perturbs it; every method is idempotent."""

    kind: str

    def up(self, topology: Topology) -> None: ...

    def down(self) -> None:
        """Remove everything this backend created; safe to call twice or after a crash."""
        ...

    def inject(self, fault: Fault) -> None: ...

    def heal(self, fault: Fault) -> None: ...

    def reachable(self, src: str, dst: str) -> bool:
        """Whether the data plane delivers from ``src`` to ``dst`` right now."""
        ...
