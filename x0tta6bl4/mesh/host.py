"""``HostBackend``: the real interfaces of Ray nodes, one mesh node per machine.

Nothing is created: the operator wires the machines and gives each its
addresses; a topology file says which Ray node (by IP) is which mesh node,
its router address (a /32 on ``lo`` or any local address) and, per link, the
interface and address at both ends::

    {"version": 1,
     "nodes": [{"name": "a", "ray_ip": "192.0.2.10", "loopback": "10.255.0.1"}, ...],
     "links": [{"a": "a", "b": "b", "cost": 1.0,
                "a_ifname": "eth1", "a_address": "10.128.0.0",
                "b_ifname": "eth1", "b_address": "10.128.0.1"}, ...]}

The MeshNode actors are pinned to their machines and install routes in the
host's main table under our protocol with ``guard_foreign`` on: a route to
the same prefix owned by another protocol is refused, never replaced, and
teardown removes only ours.  Faults are not injected into real networks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from x0tta6bl4.errors import MeshError, TopologyError
from x0tta6bl4.mesh.ports import Fault
from x0tta6bl4.mesh.service import NodeSpec
from x0tta6bl4.mesh.topology import Link, Node, Topology
from x0tta6bl4.mesh.transport import LinkSocket

__all__ = ["HostBackend", "HostLink", "HostNode"]


class HostNode:
    """A machine: its mesh name, the IP of its Ray node, its router address."""

    def __init__(self, name: str, ray_ip: str, loopback: str) -> None:
        self.name, self.ray_ip, self.loopback = name, ray_ip, loopback


class HostLink:
    """A cable between two machines; ``ends``: node -> (interface, address) at its end."""

    def __init__(self, a: str, b: str, ends: dict[str, tuple[str, str]], cost: float) -> None:
        self.a, self.b, self.ends, self.cost = a, b, ends, cost


class HostBackend:
    """Mesh nodes on real machines, described by a topology file (see the module doc)."""

    kind = "host"

    def __init__(self, nodes: list[HostNode], links: list[HostLink]) -> None:
        self.nodes = {n.name: n for n in nodes}
        self.links = links
        self.topology = Topology(
            [Node(n.name) for n in nodes], [Link(lk.a, lk.b, lk.cost) for lk in links]
        )
        self.ray_nodes: dict[str, str] = {}

    @classmethod
    def load(cls, path: Path) -> HostBackend:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            nodes = [HostNode(n["name"], n["ray_ip"], n["loopback"]) for n in data["nodes"]]
            links = [
                HostLink(
                    lk["a"],
                    lk["b"],
                    {
                        lk["a"]: (lk["a_ifname"], lk["a_address"]),
                        lk["b"]: (lk["b_ifname"], lk["b_address"]),
                    },
                    float(lk.get("cost", 1.0)),
                )
                for lk in data["links"]
            ]
        except OSError as exc:
            raise TopologyError(f"cannot read host topology {path}: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise TopologyError(
                f"host topology {path} is malformed: {exc!r}",
                fix="see the host topology format in docs/mesh.md",
            ) from exc
        return cls(nodes, links)

    @classmethod
    def from_settings(cls, settings: Any) -> HostBackend:
        path = settings.mesh.topology_file
        if path is None:
            raise TopologyError(
                "mesh.backend=host needs mesh.topology_file",
                fix="describe the machines and links in a file (docs/mesh.md)",
            )
        return cls.load(path)

    def up(self, topology: Topology, ray_nodes: dict[str, str] | None = None) -> None:
        """Match every mesh node to an alive Ray node by IP (``ray_nodes``: IP -> node id)."""
        if ray_nodes is None:
            import ray

            alive = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
            ray_nodes = {n["NodeManagerAddress"]: n["NodeID"] for n in alive}
        missing = [n.name for n in self.nodes.values() if n.ray_ip not in ray_nodes]
        if missing:
            raise MeshError(
                f"mesh nodes {', '.join(missing)} have no alive Ray node at their ray_ip",
                fix="start Ray on those machines (`ray up`) or correct ray_ip in the topology",
            )
        self.ray_nodes = {n.name: ray_nodes[n.ray_ip] for n in self.nodes.values()}

    def specs(self) -> dict[str, NodeSpec]:
        """The :class:`NodeSpec` of every node (host namespace, foreign routes guarded)."""
        specs = {}
        loopbacks = {name: n.loopback for name, n in self.nodes.items()}
        for name, node in self.nodes.items():
            links, costs = {}, {}
            for lk in self.links:
                if name not in lk.ends:
                    continue
                peer = lk.b if name == lk.a else lk.a
                ifname, address = lk.ends[name]
                links[peer] = LinkSocket(ifname, address, lk.ends[peer][1])
                costs[peer] = lk.cost
            specs[name] = NodeSpec(
                name=name,
                netns=None,
                loopback=node.loopback,
                links=links,
                costs=costs,
                destinations=loopbacks,
                guard_foreign=True,
                ray_node_id=self.ray_nodes.get(name),
            )
        return specs

    def down(self) -> None:
        """Nothing was created; the actors remove their own routes when stopped."""
        self.ray_nodes = {}

    def inject(self, fault: Fault) -> None:
        raise MeshError(
            "faults are not injected into a real network",
            fix="use the netns backend (--set mesh.backend=netns) to rehearse failures",
        )

    def heal(self, fault: Fault) -> None:
        self.inject(fault)

    def reachable(self, src: str, dst: str) -> bool:
        """Ping ``dst``'s address from ``src``'s; only from the machine running ``src``."""
        ping = shutil.which("ping")
        if ping is None:
            raise MeshError("ping is not installed", fix="apt-get install iputils-ping")
        source, target = self.nodes[src].loopback, self.nodes[dst].loopback
        result = subprocess.run(
            [ping, "-n", "-q", "-c", "1", "-W", "1", "-I", source, target],
            capture_output=True,
            check=False,
            timeout=10,
        )
        return result.returncode == 0
