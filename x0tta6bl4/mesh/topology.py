"""The topology model: nodes, undirected links with cost, capacity and delay.

A :class:`Topology` is plain data, validated on construction, that every part of
the platform shares: the backends build it in the kernel or in memory, the
twin asks what-if on it, the ML scenarios are generated over it.
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from x0tta6bl4.errors import TopologyError

__all__ = [
    "FORMAT_VERSION",
    "GENERATORS",
    "Link",
    "Node",
    "Topology",
    "generate",
    "grid",
    "ring",
    "ring_chords",
    "waxman",
]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Node:
    name: str
    x: float = 0.0
    y: float = 0.0
    """Position on the unit square (used by geometric generators and drawings)."""


@dataclass(frozen=True)
class Link:
    """An undirected link; ``a < b`` always holds, so a link has one spelling."""

    a: str
    b: str
    cost: float = 1.0
    capacity_mbps: float = 1000.0
    delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.a == self.b:
            raise TopologyError(
                f"link {self.a}-{self.b} joins a node to itself", fix="remove the self-loop"
            )
        if self.a > self.b:
            a, b = self.b, self.a
            object.__setattr__(self, "a", a)
            object.__setattr__(self, "b", b)
        if not self.cost > 0 or not self.capacity_mbps > 0 or self.delay_ms < 0:
            raise TopologyError(
                f"link {self.key}: cost and capacity must be > 0 and delay >= 0",
                fix="correct the link's attributes",
                link=self.key,
            )

    @property
    def key(self) -> str:
        return f"{self.a}-{self.b}"

    @property
    def ends(self) -> tuple[str, str]:
        return (self.a, self.b)

    def other(self, node: str) -> str:
        if node == self.a:
            return self.b
        if node == self.b:
            return self.a
        raise TopologyError(f"node {node} is not an end of link {self.key}")


def link_key(a: str, b: str) -> str:
    """The canonical name of the link between ``a`` and ``b``."""
    return f"{a}-{b}" if a < b else f"{b}-{a}"


@dataclass
class Topology:
    """Nodes and links, validated: unique names, known ends, no duplicate links.

    Args:
        nodes: the mesh nodes, names unique.
        links: undirected links between known nodes, at most one per pair.
        require_connected: raise :class:`TopologyError` when some node cannot
            reach another.
    """

    nodes: list[Node]
    links: list[Link]
    require_connected: bool = field(default=True, repr=False)

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if not names:
            raise TopologyError("a topology needs at least one node")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TopologyError(
                f"duplicate node names: {', '.join(dupes)}", fix="give every node a unique name"
            )
        known = set(names)
        seen: set[str] = set()
        for link in self.links:
            unknown = [end for end in link.ends if end not in known]
            if unknown:
                raise TopologyError(
                    f"link {link.key} names unknown node {unknown[0]}",
                    fix="add the node or correct the link",
                    link=link.key,
                )
            if link.key in seen:
                raise TopologyError(
                    f"duplicate link {link.key}", fix="keep one link per node pair", link=link.key
                )
            seen.add(link.key)
        self._by_key = {link.key: link for link in self.links}
        self._adjacency: dict[str, list[str]] = {name: [] for name in names}
        for link in self.links:
            self._adjacency[link.a].append(link.b)
            self._adjacency[link.b].append(link.a)
        if self.require_connected and len(names) > 1:
            parts = self.components()
            if len(parts) > 1:
                raise TopologyError(
                    f"topology is disconnected into {len(parts)} parts "
                    f"(e.g. {sorted(parts[1])[0]} cannot reach {sorted(parts[0])[0]})",
                    fix="add links between the parts, or pass require_connected=False",
                )

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def neighbors(self, node: str) -> list[str]:
        try:
            return self._adjacency[node]
        except KeyError:
            raise TopologyError(
                f"unknown node {node}", fix="see the topology's node list", node=node
            ) from None

    def link(self, a: str, b: str) -> Link:
        try:
            return self._by_key[link_key(a, b)]
        except KeyError:
            raise TopologyError(f"no link between {a} and {b}", link=link_key(a, b)) from None

    def has_link(self, a: str, b: str) -> bool:
        return link_key(a, b) in self._by_key

    def components(
        self, without_links: Iterable[str] = (), without_nodes: Iterable[str] = ()
    ) -> list[set[str]]:
        """Connected parts, optionally with some links (by key) and nodes removed."""
        dead_links, dead_nodes = set(without_links), set(without_nodes)
        unseen = [n for n in self.names if n not in dead_nodes]
        remaining = set(unseen)
        parts: list[set[str]] = []
        for start in unseen:
            if start not in remaining:
                continue
            part = {start}
            remaining.discard(start)
            queue = deque([start])
            while queue:
                node = queue.popleft()
                for nxt in self._adjacency[node]:
                    if nxt in remaining and link_key(node, nxt) not in dead_links:
                        remaining.discard(nxt)
                        part.add(nxt)
                        queue.append(nxt)
            parts.append(part)
        return parts

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    # --- JSON -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "nodes": [asdict(n) for n in self.nodes],
            "links": [asdict(link) for link in self.links],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], require_connected: bool = True) -> Topology:
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise TopologyError(
                f"topology format version {version!r} is not supported",
                fix=f"export it again with version {FORMAT_VERSION}",
            )
        try:
            nodes = [Node(**n) if isinstance(n, dict) else Node(str(n)) for n in data["nodes"]]
            links = [Link(**link) for link in data["links"]]
        except (KeyError, TypeError) as exc:
            raise TopologyError(
                f"malformed topology: {exc}", fix="each node needs a name; each link needs a and b"
            ) from exc
        return cls(nodes, links, require_connected=require_connected)

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str, require_connected: bool = True) -> Topology:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise TopologyError(f"cannot read topology {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise TopologyError(f"topology {path} is not JSON: {exc}") from exc
        return cls.from_dict(data, require_connected=require_connected)


# --- generators -------------------------------------------------------------


def _names(n: int) -> list[str]:
    if n < 2:
        raise TopologyError(f"a mesh needs at least 2 nodes, not {n}")
    return [f"n{i}" for i in range(n)]


def _circle(names: list[str]) -> list[Node]:
    count = len(names)
    return [
        Node(
            name,
            0.5 + 0.5 * math.cos(2 * math.pi * i / count),
            0.5 + 0.5 * math.sin(2 * math.pi * i / count),
        )
        for i, name in enumerate(names)
    ]


def ring(n: int) -> Topology:
    """``n`` nodes in a cycle: every link has exactly one alternate path."""
    names = _names(n)
    links = [Link(names[i], names[(i + 1) % n]) for i in range(n if n > 2 else 1)]
    return Topology(_circle(names), links)


def ring_chords(n: int, chord_every: int = 3, seed: int = 1) -> Topology:
    """A ring plus a chord from every ``chord_every``-th node to the opposite side."""
    base = ring(n)
    rng = random.Random(seed)
    links = list(base.links)
    keys = {link.key for link in links}
    for i in range(0, n, max(1, chord_every)):
        j = (i + n // 2 + rng.randint(-1, 1)) % n
        key = link_key(f"n{i}", f"n{j}")
        if i != j and key not in keys:
            keys.add(key)
            links.append(Link(f"n{i}", f"n{j}"))
    return Topology(base.nodes, links)


def grid(rows: int, cols: int | None = None) -> Topology:
    """A ``rows`` by ``cols`` lattice (square when ``cols`` is None)."""
    cols = cols or rows
    names = _names(rows * cols)
    nodes = [
        Node(names[r * cols + c], c / max(cols - 1, 1), r / max(rows - 1, 1))
        for r in range(rows)
        for c in range(cols)
    ]
    links = []
    for r in range(rows):
        for c in range(cols):
            here = names[r * cols + c]
            if c + 1 < cols:
                links.append(Link(here, names[r * cols + c + 1]))
            if r + 1 < rows:
                links.append(Link(here, names[(r + 1) * cols + c]))
    return Topology(nodes, links)


def waxman(
    n: int, alpha: float = 0.4, beta: float | None = None, seed: int = 1, mean_degree: float = 4.0
) -> Topology:
    """A Waxman random geometric graph, made connected by joining nearest parts.

    Nodes land uniformly on the unit square; a pair at distance ``d`` is linked
    with probability ``alpha * exp(-d / (beta * L))``.  When ``beta`` is None
    it is chosen so the mean degree is about ``mean_degree`` whatever ``n`` is
    (a mesh radio reaches its neighbours, not the whole city).  The same seed
    gives the same graph.
    """
    names = _names(n)
    if beta is None:
        beta = min(0.3, math.sqrt(mean_degree / (n * alpha * 4 * math.pi)))
    rng = random.Random(seed)
    nodes = [Node(name, rng.random(), rng.random()) for name in names]
    scale = math.sqrt(2)
    links: dict[str, Link] = {}
    for i in range(n):
        for j in range(i + 1, n):
            d = math.dist((nodes[i].x, nodes[i].y), (nodes[j].x, nodes[j].y))
            if rng.random() < alpha * math.exp(-d / (beta * scale)):
                links[link_key(names[i], names[j])] = Link(names[i], names[j])
    loose = Topology(nodes, list(links.values()), require_connected=False)
    parts = loose.components()
    position = {node.name: (node.x, node.y) for node in nodes}
    while len(parts) > 1:
        first, rest = parts[0], set().union(*parts[1:])
        a, b = min(
            ((u, v) for u in first for v in rest),
            key=lambda pair: math.dist(position[pair[0]], position[pair[1]]),
        )
        links[link_key(a, b)] = Link(a, b)
        parts = Topology(nodes, list(links.values()), require_connected=False).components()
    return Topology(nodes, list(links.values()))


GENERATORS = {"ring", "grid", "ring_chords", "waxman"}


def generate(kind: str, n: int, seed: int = 1) -> Topology:
    """Build a topology by generator name with about ``n`` nodes."""
    if kind == "ring":
        return ring(n)
    if kind == "ring_chords":
        return ring_chords(n, seed=seed)
    if kind == "grid":
        side = max(2, round(math.sqrt(n)))
        return grid(side, max(2, math.ceil(n / side)))
    if kind == "waxman":
        return waxman(n, seed=seed)
    raise TopologyError(
        f"unknown topology generator {kind!r}", fix=f"use one of {', '.join(sorted(GENERATORS))}"
    )
