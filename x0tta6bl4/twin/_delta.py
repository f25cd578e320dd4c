"""Which source-destination pairs a scenario changes, and their new paths.

Removing links or nodes, or raising costs, can only change the pairs whose
current path crosses a touched element: in each source's tree those are the
subtrees below the touched elements.  All of them are repaired in ONE
Dijkstra over an auxiliary graph whose vertices are the changed pairs: a
pair ``(s, t)`` links to ``(s, w)`` for each live link ``t-w`` inside the
changed set, and a virtual root links to it with weight
``dist(s, w) + cost(w, t)`` for each neighbour ``w`` outside (whose distance
is unchanged).  Adding links or lowering costs then relaxes each such edge
over the whole distance matrix: ``min(d, d[:, u] + c + d[v, :])`` is exact for
one edge at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

from x0tta6bl4.twin._graph import BoolArray, FloatArray, IntArray, Trees

__all__ = ["Delta", "PairIndex", "added_edges", "repair", "unique_pairs"]

_REL_EPS = 1e-12
"""Relative margin below which a new path does not count as shorter (float noise)."""


@dataclass
class Delta:
    """The changed pairs ``(src[i], dst[i])`` before (0) and after (1) a scenario.

    ``pred`` is the node before ``dst`` on the path (-1: none); ``parent`` is the
    index of the pair ``(src, pred)`` when that pair is itself in the delta,
    else -1 (its path then continues along the unchanged tree of ``src``).
    """

    src: IntArray
    dst: IntArray
    dist0: FloatArray
    dist1: FloatArray
    pred0: IntArray
    pred1: IntArray
    parent0: IntArray
    parent1: IntArray

    @classmethod
    def of(
        cls, base: Trees, src: IntArray, dst: IntArray, dist1: FloatArray, pred1: IntArray
    ) -> Delta:
        index = PairIndex(base.dist.shape[0], src, dst)
        pred0 = base.pred[src, dst].astype(np.int64)
        pred0 = np.where(pred0 >= 0, pred0, -1)
        return cls(
            src=src,
            dst=dst,
            dist0=base.dist[src, dst],
            dist1=dist1,
            pred0=pred0,
            pred1=pred1,
            parent0=index.find(src, pred0),
            parent1=index.find(src, pred1),
        )

    def __len__(self) -> int:
        return len(self.src)


class PairIndex:
    """Position of each pair ``(src[i], dst[i])``, found in O(1) through an ``n x n`` table."""

    def __init__(self, n: int, src: IntArray, dst: IntArray) -> None:
        self.n = n
        self.table = np.full(n * n, -1, dtype=np.int64)
        self.table[src * n + dst] = np.arange(len(src), dtype=np.int64)

    def find(self, src: IntArray, dst: IntArray) -> IntArray:
        """Position of each ``(src[i], dst[i])``; -1 where absent or ``dst[i] < 0``."""
        hit = self.table[src * self.n + np.maximum(dst, 0)]
        return np.where(dst >= 0, hit, -1)


def unique_pairs(n: int, src: IntArray, dst: IntArray) -> IntArray:
    """Positions of the first occurrence of each distinct pair, in input order."""
    table = np.full(n * n, -1, dtype=np.int64)
    positions = np.arange(len(src), dtype=np.int64)
    table[(src * n + dst)[::-1]] = positions[::-1]
    return np.flatnonzero(table[src * n + dst] == positions)


def repair(
    base: Trees,
    adjacency: csr_array,
    tops: tuple[IntArray, IntArray],
    node_alive: BoolArray,
) -> tuple[IntArray, IntArray, FloatArray, IntArray]:
    """New distances and predecessors of the pairs below ``tops`` (sources, subtree tops).

    Returns unique ``(src, dst, dist, pred)`` of the repaired pairs.
    """
    n = base.dist.shape[0]
    src, dst = base.subtrees(*tops)
    keep = unique_pairs(n, src, dst)
    keep = keep[src[keep] != dst[keep]]
    src, dst = src[keep], dst[keep]
    m = len(src)
    if m == 0:
        return src, dst, np.empty(0), np.empty(0, dtype=np.int64)
    live = np.flatnonzero(node_alive[src] & node_alive[dst])

    indptr, indices, data = adjacency.indptr, adjacency.indices, adjacency.data
    degree = (indptr[dst[live] + 1] - indptr[dst[live]]).astype(np.int64)
    arc_from = np.repeat(live, degree)
    first = np.repeat(indptr[dst[live]].astype(np.int64), degree)
    step = np.arange(len(arc_from), dtype=np.int64) - np.repeat(np.cumsum(degree) - degree, degree)
    neighbour = indices[first + step].astype(np.int64)
    weight = data[first + step]
    target = PairIndex(n, src, dst).find(src[arc_from], neighbour)

    inner = target >= 0
    outer = ~inner & np.isfinite(base.dist[src[arc_from], neighbour])
    entry_cost = base.dist[src[arc_from[outer]], neighbour[outer]] + weight[outer]
    best_entry, best_node = _min_per_group(arc_from[outer], entry_cost, neighbour[outer])

    root = m
    graph = csr_array(
        (
            np.concatenate([weight[inner], entry_cost[best_entry]]),
            (
                np.concatenate([arc_from[inner], np.full(len(best_entry), root)]),
                np.concatenate([target[inner], arc_from[outer][best_entry]]),
            ),
        ),
        shape=(m + 1, m + 1),
    )
    dist, pred = dijkstra(graph, directed=True, indices=root, return_predecessors=True)
    dist, pred = dist[:m], pred[:m].astype(np.int64)
    via = np.full(m, -1, dtype=np.int64)
    via[arc_from[outer][best_entry]] = best_node
    inner_pred = dst[np.clip(pred, 0, m - 1)]
    new_pred = np.where(pred == root, via, np.where(pred >= 0, inner_pred, -1))
    return src, dst, dist, np.where(np.isfinite(dist), new_pred, -1)


def _min_per_group(
    group: IntArray, value: FloatArray, label: IntArray
) -> tuple[IntArray, IntArray]:
    """Index (into the inputs) of the smallest value per group, and its label."""
    if len(group) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    order = np.lexsort((label, value, group))
    firsts = order[np.r_[True, group[order][1:] != group[order][:-1]]]
    return firsts, label[firsts]


def added_edges(dist: FloatArray, pred: IntArray, edges: list[tuple[int, int, float]]) -> None:
    """Relax each new or cheaper edge ``(u, v, cost)`` over full matrices, in place."""
    n = dist.shape[0]
    cols = np.arange(n)
    for u, v, cost in edges:
        via_uv = dist[:, u][:, None] + cost + dist[v, :][None, :]
        via_vu = dist[:, v][:, None] + cost + dist[u, :][None, :]
        limit = dist - _REL_EPS * np.where(np.isfinite(dist), np.abs(dist), 0.0) - _REL_EPS
        take_uv = via_uv < np.minimum(limit, via_vu + _REL_EPS)
        take_vu = ~take_uv & (via_vu < limit)
        pred_uv = np.where(cols == v, u, pred[v, :])[None, :]
        pred_vu = np.where(cols == u, v, pred[u, :])[None, :]
        new_pred = np.where(take_uv, pred_uv, np.where(take_vu, pred_vu, pred))
        np.copyto(dist, np.where(take_uv, via_uv, np.where(take_vu, via_vu, dist)))
        np.copyto(pred, new_pred)
