"""The addressing plan of an emulated mesh: names and addresses from a topology.

Pure and deterministic, so every process (the backend that builds the mesh, a
MeshNode actor, ``mesh clean`` after a crash) derives the same plan from the
topology and the run id:

* namespace of node ``n3`` in run ``k7x2``: ``x0-k7x2-n3``;
* node loopback: ``10.255.h.l/32`` on ``lo`` for the i-th node (i from 1), the
  address every route and ping targets;
* link number j: the /31 ``10.128.0.0 + 2j`` (end ``a`` takes the even
  address, end ``b`` the odd one), up to 2^21 links;
* the veth end in node X towards Y is ``x0-Y`` when that fits the 15-character
  interface name limit, else ``x0l<j>``.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass

from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mesh.topology import Topology

__all__ = [
    "LINK_NET",
    "LOOPBACK_NET",
    "NS_PREFIX",
    "AddressPlan",
    "LinkEnd",
    "LinkPlan",
    "namespace_name",
    "new_run_id",
    "parse_namespace",
    "plan",
    "validate_run_id",
]

NS_PREFIX = "x0-"
LOOPBACK_NET = ipaddress.IPv4Network("10.255.0.0/16")
LINK_NET = ipaddress.IPv4Network("10.128.0.0/10")
_IFNAMSIZ = 15
_RUN_ID = re.compile(r"^[a-z0-9]{1,10}$")
_NODE_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_NS_NAME = re.compile(r"^x0-([a-z0-9]{1,10})-([A-Za-z0-9_.]+)$")


def new_run_id() -> str:
    """A fresh 6-character run id (lower-case letters and digits)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(6))


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise TopologyError(
            f"run id {run_id!r} is not 1-10 lower-case letters or digits",
            fix="omit it to get a fresh one",
        )
    return run_id


def namespace_name(run_id: str, node: str) -> str:
    return f"{NS_PREFIX}{run_id}-{node}"


def parse_namespace(name: str) -> tuple[str, str] | None:
    """``x0-k7x2-n3`` -> ``("k7x2", "n3")``; None for a name that is not ours."""
    match = _NS_NAME.match(name)
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True)
class LinkEnd:
    """One node's end of a link: its interface, its address, and the other end's."""

    node: str
    peer: str
    ifname: str
    address: str
    peer_address: str
    prefixlen: int = 31


@dataclass(frozen=True)
class LinkPlan:
    key: str
    index: int
    a: LinkEnd
    b: LinkEnd

    def end(self, node: str) -> LinkEnd:
        if node == self.a.node:
            return self.a
        if node == self.b.node:
            return self.b
        raise TopologyError(f"node {node} is not an end of link {self.key}")


@dataclass(frozen=True)
class AddressPlan:
    """Everything named or numbered in one emulated mesh."""

    run_id: str
    namespaces: dict[str, str]
    loopbacks: dict[str, str]
    links: dict[str, LinkPlan]

    def ends(self, node: str) -> dict[str, LinkEnd]:
        """The link ends of ``node``, by neighbour name."""
        ends = {}
        for link in self.links.values():
            if node in (link.a.node, link.b.node):
                end = link.end(node)
                ends[end.peer] = end
        return ends

    def node_of_loopback(self, address: str) -> str | None:
        for node, loopback in self.loopbacks.items():
            if loopback == address:
                return node
        return None


def _ifname(peer: str, index: int) -> str:
    name = f"x0-{peer}"
    return name if len(name) <= _IFNAMSIZ else f"x0l{index}"


def plan(topology: Topology, run_id: str) -> AddressPlan:
    """Name and number everything for ``topology`` in run ``run_id``."""
    validate_run_id(run_id)
    bad = [name for name in topology.names if not _NODE_NAME.match(name)]
    if bad:
        raise TopologyError(
            f"node name {bad[0]!r} cannot name a namespace",
            fix="use letters, digits, '_' and '.' only in node names",
        )
    if len(topology) >= LOOPBACK_NET.num_addresses - 1:
        raise TopologyError(f"{len(topology)} nodes do not fit {LOOPBACK_NET}")
    if len(topology.links) > LINK_NET.num_addresses // 2:
        raise TopologyError(f"{len(topology.links)} links do not fit {LINK_NET}")
    loopbacks = {
        name: str(LOOPBACK_NET.network_address + i + 1) for i, name in enumerate(topology.names)
    }
    links = {}
    for j, link in enumerate(topology.links):
        base = LINK_NET.network_address + 2 * j
        addr_a, addr_b = str(base), str(base + 1)
        links[link.key] = LinkPlan(
            key=link.key,
            index=j,
            a=LinkEnd(link.a, link.b, _ifname(link.b, j), addr_a, addr_b),
            b=LinkEnd(link.b, link.a, _ifname(link.a, j), addr_b, addr_a),
        )
    return AddressPlan(
        run_id=run_id,
        namespaces={name: namespace_name(run_id, name) for name in topology.names},
        loopbacks=loopbacks,
        links=links,
    )
