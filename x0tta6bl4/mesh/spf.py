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
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["Entry", "Graph", "routes_by_claims", "routing_table", "shortest_paths"]

INF = math.inf


@dataclass
class Graph:
    """Nodes ``0..n-1`` (``names[i]``) and symmetric weighted adjacency (``adj[u][v]`` is
    the cost of u-v).  Read-only for its users: the LSDB lends its live structures."""

    names: list[str]
    index: dict[str, int]
    adj: list[dict[int, float]]
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
        adj: list[dict[int, float]] = [{} for _ in names]
        for a, b, cost in edges:
            adj[index[a]][index[b]] = cost
            adj[index[b]][index[a]] = cost
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
    heap: list[tuple[float, int]] = []
    pop, push = heapq.heappop, heapq.heappush
    for v, cost in adj[src].items():
        if cost < dist[v]:
            dist[v] = cost
            first[v] = v
            push(heap, (cost, v))
    while heap:
        d, u = pop(heap)
        if d > dist[u] or (no_transit and u in no_transit):
            continue
        hop = first[u]
        for v, cost in adj[u].items():
            nd = d + cost
            if nd < dist[v]:
                dist[v] = nd
                first[v] = hop
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
    names = graph.names
    dests = [d for d in range(len(names)) if d != s and first[d] >= 0]
    if not dests:
        return {}
    neighbors = list(graph.adj[s])
    row_of = {v: i for i, v in enumerate(neighbors)}
    # Dijkstra from each neighbour, on the same graph (the network's view), then the
    # RFC 5286 inequalities for all (neighbour, destination) pairs at once.
    dist = np.array([shortest_paths(graph, v)[0] for v in neighbors])  # [k, n]
    d_idx = np.array(dests)
    e_idx = np.array([first[d] for d in dests])
    e_row = np.array([row_of[e] for e in e_idx])
    cols = np.arange(len(dests))
    to_d = dist[:, d_idx]  # dist(N, D)
    loop_free = to_d < dist[:, s : s + 1] + np.asarray(dist_s)[d_idx][None, :]
    loop_free[e_row, cols] = False  # the primary next hop is no alternate
    protects = (to_d < dist[:, e_idx] + dist[e_row, d_idx][None, :]) & (d_idx != e_idx)[None, :]
    cost = np.array([graph.adj[s][v] for v in neighbors])[:, None] + to_d
    best_protecting = np.where(loop_free & protects, cost, INF)
    best_any = np.where(loop_free, cost, INF)
    use_protecting = np.isfinite(best_protecting.min(axis=0))
    alt_row = np.where(use_protecting, best_protecting.argmin(axis=0), best_any.argmin(axis=0))
    alt_cost = np.where(use_protecting, best_protecting.min(axis=0), best_any.min(axis=0))
    has_alt = np.isfinite(alt_cost)
    table: dict[str, Entry] = {}
    for i, d in enumerate(dests):
        name, hop = names[d], names[int(e_idx[i])]
        if has_alt[i]:
            alt = names[neighbors[int(alt_row[i])]]
            table[name] = Entry(
                name, hop, dist_s[d], alt, float(alt_cost[i]), bool(use_protecting[i])
            )
        else:
            table[name] = Entry(name, hop, dist_s[d])
    return table


def routes_by_claims(
    graph: Graph,
    source: str,
    claims: Mapping[str, Mapping[str, float]],
    neighbors: Collection[str],
) -> dict[str, tuple[str, float]]:
    """Next hop and cost towards destinations the confirmed graph no longer reaches (a
    node whose neighbours stopped hearing it), through the cheapest neighbour that the
    destination's own last LSA claims: ``min_v dist(source, v) + claims[dest][v]``.

    Every node applies this rule to the same database, so these routes form one
    shortest-path tree (cost falls at every hop): no loops, unlike freezing whatever
    route each node happened to hold when the destination dropped out.  A claim of
    ``source`` itself gives the direct link (``next hop == dest``) when ``dest`` is one
    of ``source``'s ``neighbors``; a claim of a link that does not exist is ignored."""
    s = graph.index.get(source)
    dist, first = shortest_paths(graph, s) if s is not None else ([], [])
    out: dict[str, tuple[str, float]] = {}
    for dest, links in claims.items():
        best: tuple[str, float] | None = None
        for v, cost in links.items():
            if v == source:
                if dest not in neighbors:
                    continue
                candidate = (dest, cost)
            elif (i := graph.index.get(v)) is not None and i < len(first) and first[i] >= 0:
                candidate = (graph.names[first[i]], dist[i] + cost)
            else:
                continue
            if best is None or candidate[1] < best[1]:
                best = candidate
        if best is not None:
            out[dest] = best
    return out
