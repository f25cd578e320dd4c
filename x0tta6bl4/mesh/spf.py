"""Shortest paths and loop-free alternates on an integer-indexed graph.

:func:`routing_table` runs Dijkstra from the source and from each of its
neighbours (1 + degree runs; heapq over adjacency lists of ``(index, cost)``)
and picks, per destination ``D`` with primary next hop ``E``, the neighbour
``N`` that satisfies RFC 5286's loop-free inequality

    dist(N, D) < dist(N, S) + dist(S, D)

with the lowest ``cost(S, N) + dist(N, D)``, preferring node-protecting
alternates (``dist(N, D) < dist(N, E) + dist(E, D)``), which also survive the
death of ``E``.  Such an ``N`` never sends a packet for ``D`` back to ``S``, so
``S`` may switch to it the moment the link to ``E`` fails, before anyone else
knows.  Nodes in ``no_transit`` are reached but never expanded.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["Entry", "Graph", "routing_table", "shortest_paths"]

INF = math.inf


@dataclass
class Graph:
    """Nodes ``0..n-1`` (``names[i]``) and symmetric weighted adjacency lists."""

    names: list[str]
    index: dict[str, int]
    adj: list[list[tuple[int, float]]]
    no_transit: frozenset[int] = frozenset()

    @classmethod
    def from_edges(
        cls,
        edges: Collection[tuple[str, str, float]],
        nodes: Collection[str] = (),
        no_transit: Collection[str] = (),
    ) -> Graph:
        """Build from undirected ``(a, b, cost)`` edges (names sorted for stable tie-breaks)."""
        names = sorted({*nodes, *(a for a, _, _ in edges), *(b for _, b, _ in edges)})
        index = {name: i for i, name in enumerate(names)}
        adj: list[list[tuple[int, float]]] = [[] for _ in names]
        for a, b, cost in edges:
            adj[index[a]].append((index[b], cost))
            adj[index[b]].append((index[a], cost))
        for row in adj:
            row.sort()
        return cls(names, index, adj, frozenset(index[n] for n in no_transit if n in index))

    def __len__(self) -> int:
        return len(self.names)


def shortest_paths(graph: Graph, src: int) -> tuple[list[float], list[int]]:
    """Dijkstra from ``src``: distance to every node and the first hop on the way (-1: none)."""
    n = len(graph.names)
    dist = [INF] * n
    first = [-1] * n
    dist[src] = 0.0
    adj = graph.adj
    no_transit = graph.no_transit
    heap: list[tuple[float, int]] = [(0.0, src)]
    pop, push = heapq.heappop, heapq.heappush
    while heap:
        d, u = pop(heap)
        if d > dist[u] or (u != src and u in no_transit):
            continue
        hop = first[u]
        for v, cost in adj[u]:
            nd = d + cost
            if nd < dist[v]:
                dist[v] = nd
                first[v] = v if u == src else hop
                push(heap, (nd, v))
    return dist, first


@dataclass(frozen=True)
class Entry:
    """How the source reaches ``dest``: primary next hop and, when one exists, an LFA."""

    dest: str
    next_hop: str
    cost: float
    alternate: str | None = None
    alternate_cost: float = INF
    node_protecting: bool = False


def routing_table(graph: Graph, source: str) -> dict[str, Entry]:
    """Primary next hop and best loop-free alternate for every destination reachable from
    ``source``; empty when ``source`` is not in the graph."""
    s = graph.index.get(source)
    if s is None:
        return {}
    dist_s, first = shortest_paths(graph, s)
    neighbors = [(v, cost) for v, cost in graph.adj[s]]
    # Dijkstra from each neighbour, on the same graph (so from the network's view).
    dist_n = {v: shortest_paths(graph, v)[0] for v, _ in neighbors}
    names = graph.names
    table: dict[str, Entry] = {}
    for d in range(len(names)):
        if d == s or first[d] < 0:
            continue
        e = first[d]
        best: tuple[int, float, int] | None = None  # (not node-protecting, cost, neighbour)
        for v, link_cost in neighbors:
            if v == e:
                continue
            dv = dist_n[v]
            if not dv[d] < dv[s] + dist_s[d]:
                continue
            protects = d != e and dv[d] < dv[e] + dist_n[e][d]
            candidate = (0 if protects else 1, link_cost + dv[d], v)
            if best is None or candidate < best:
                best = candidate
        if best is None:
            table[names[d]] = Entry(names[d], names[e], dist_s[d])
        else:
            table[names[d]] = Entry(
                names[d], names[e], dist_s[d], names[best[2]], best[1], best[0] == 0
            )
    return table
