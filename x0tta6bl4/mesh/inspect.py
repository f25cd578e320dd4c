"""Read-only views of a running netns mesh from the kernel (for ``mesh status/routes``).

Works from any process: the run is found through its state file, link
states and routes are read with netlink inside each namespace, active faults
come from the fault log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute

from x0tta6bl4.mesh.kernel_routes import BACKUP_METRIC, PRIMARY_METRIC, KernelRoutes
from x0tta6bl4.mesh.netns import NetnsBackend
from x0tta6bl4.mesh.nsutil import netns_exists

__all__ = ["NodeRow", "RunStatus", "run_routes", "run_status"]

_IFF_UP, _IFF_LOWER_UP = 0x1, 0x10000


@dataclass
class NodeRow:
    node: str
    namespace: str
    exists: bool
    links: int
    links_up: int = 0
    routes: int = 0
    down: list[str] = field(default_factory=list)
    """Neighbours whose link is down (administratively or without carrier)."""


@dataclass
class RunStatus:
    run_id: str
    nodes: list[NodeRow]
    faults: list[str]


def _link_states(ipr: IPRoute) -> dict[str, bool]:
    return {
        link.get("ifname"): bool(link["flags"] & _IFF_UP) and bool(link["flags"] & _IFF_LOWER_UP)
        for link in ipr.get_links()
    }


def run_status(data_dir: Path, run_id: str | None = None) -> RunStatus:
    """Per node: namespace present, links up, our routes; plus active faults."""
    backend = NetnsBackend.attach(data_dir, run_id)
    plan = backend._require_plan()
    kernel = KernelRoutes()
    rows = []
    try:
        for node, ns in plan.namespaces.items():
            ends = plan.ends(node)
            row = NodeRow(node, ns, netns_exists(ns), len(ends))
            if row.exists:
                worker = backend.worker(node)
                states = worker.call(_link_states)
                row.routes = len({addr for addr, _ in worker.call(kernel.read)})
                row.down = sorted(peer for peer, end in ends.items() if not states.get(end.ifname))
                row.links_up = row.links - len(row.down)
            rows.append(row)
        faults = [item.describe() for item in backend.faults.active()]
    finally:
        backend.close()
    return RunStatus(backend.run_id, rows, faults)


def run_routes(
    data_dir: Path, run_id: str | None = None, only: str | None = None
) -> list[tuple[str, str, str, str, str, str]]:
    """``(node, destination, address, via neighbour, device, role)`` for each of our
    routes; role is ``primary`` or ``backup`` (the loop-free alternate)."""
    backend = NetnsBackend.attach(data_dir, run_id)
    plan = backend._require_plan()
    kernel = KernelRoutes()
    rows = []
    try:
        for node in [only] if only else list(plan.namespaces):
            backend.namespace(node)
            ends = plan.ends(node)
            by_gateway = {end.peer_address: (peer, end.ifname) for peer, end in ends.items()}
            found = backend.worker(node).call(kernel.read)
            for (addr, metric), (gateway, _oif) in sorted(found.items()):
                peer, ifname = by_gateway.get(gateway, (gateway, "?"))
                dest = plan.node_of_loopback(addr) or "?"
                role = {PRIMARY_METRIC: "primary", BACKUP_METRIC: "backup"}.get(metric, str(metric))
                rows.append((node, dest, addr, peer, ifname, role))
    finally:
        backend.close()
    return rows
