"""Loads and flags along paths, without walking any path in Python.

The changed pairs of a what-if form a forest, before and after (a pair's
parent is the pair of its predecessor when that one changed too), that hangs
off the mirrored, unchanged trees.  Sums and flags run up that forest level
by level, then climb the mirrored trees from the attachment points with all
walkers in step (:func:`path_loads`).  The whole mirrored state's load is a
difference of prefix sums over each tree's preorder (:func:`row_loads`).
"""

from __future__ import annotations

import numpy as np

from x0tta6bl4.twin._graph import (
    BoolArray,
    FloatArray,
    IndexedGraph,
    IntArray,
    Trees,
    crosses,
    jump_depth,
)

__all__ = ["fold_or", "forest_sums", "path_loads", "row_loads"]

_ROW_CHUNK = 256
"""Trees handled per block in :func:`row_loads` (bounds its memory to ~chunk x n x k)."""
_MERGE_EVERY = 8
"""Hops between two merges of the walkers that met on the same tree entry."""


def _roots_to_self(parent: IntArray) -> IntArray:
    return np.where(parent >= 0, parent, np.arange(len(parent), dtype=np.int64))


def fold_or(parent: IntArray, own: BoolArray, root_value: BoolArray) -> BoolArray:
    """``value[e] = own[e] or value[parent[e]]``, with ``root_value`` above each root."""
    start = own | ((parent < 0) & root_value)
    return crosses(_roots_to_self(parent), start)


def forest_sums(parent: IntArray, weight: FloatArray) -> FloatArray:
    """Sum of ``weight`` (one row per entry, k columns) over each entry's subtree."""
    up = _roots_to_self(parent)
    depth = jump_depth(up)
    by_depth = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(depth.max(initial=0) + 2))
    columns = [weight[:, c].astype(np.float64, copy=True) for c in range(weight.shape[1])]
    for level in range(len(bounds) - 2, 0, -1):
        idx = by_depth[bounds[level] : bounds[level + 1]]
        target = up[idx]
        for acc in columns:
            np.add.at(acc, target, acc[idx])
    return np.stack(columns, axis=1)


def _preorder_loads(
    trees: Trees, tree_links: IntArray, rows: IntArray, placed: FloatArray, loads: FloatArray
) -> None:
    """Add to ``loads`` ([links, k]) the load of demands already placed at preorder
    positions: ``placed[i, p + 1, k]`` is the demand from ``rows[i]`` to the node at
    position ``p`` of its tree.  Edge into ``x`` carries the sum over ``x``'s subtree."""
    n = trees.dist.shape[0]
    width = n + 1
    lo = np.maximum(trees.pre[rows], 0).astype(np.int64)
    hi = lo + trees.size[rows]
    base = (np.arange(len(rows), dtype=np.int64) * width)[:, None]
    links = tree_links[rows]
    has = links >= 0
    lo_flat, hi_flat, edge_links = (base + lo)[has], (base + hi)[has], links[has]
    prefix = np.cumsum(placed, axis=1)
    for c in range(placed.shape[2]):
        column = prefix[:, :, c].ravel()
        carried = column[hi_flat] - column[lo_flat]
        loads[:, c] += np.bincount(edge_links, weights=carried, minlength=len(loads))


def row_loads(
    trees: Trees, tree_links: IntArray, rows: IntArray, demand: FloatArray, num_links: int
) -> FloatArray:
    """Per-link load (``[links, k]``) of ``demand[i, t, k]`` routed from ``rows[i]`` to ``t``
    along the mirrored trees."""
    n = trees.dist.shape[0]
    loads = np.zeros((num_links, demand.shape[2]))
    for start in range(0, len(rows), _ROW_CHUNK):
        r = rows[start : start + _ROW_CHUNK]
        order = trees.order[r].astype(np.int64)
        flat = (np.arange(len(r), dtype=np.int64) * n)[:, None] + np.maximum(order, 0)
        block = demand[start : start + _ROW_CHUNK].reshape(len(r) * n, -1)
        placed = np.zeros((len(r), n + 1, demand.shape[2]))
        placed[:, 1:] = block[flat] * (order >= 0)[..., None]
        _preorder_loads(trees, tree_links, r, placed, loads)
    return loads


def path_loads(
    graph: IndexedGraph,
    trees: Trees,
    tree_links: IntArray,
    delta: tuple[IntArray, IntArray, IntArray, IntArray],
    weight: FloatArray,
) -> FloatArray:
    """Per-link load of ``weight[i, k]`` routed from ``src[i]`` to ``dst[i]`` along
    paths given as a forest over the pairs that hangs off the mirrored trees.

    ``delta`` is ``(src, dst, pred, parent)``.  From the attachment points the
    walkers climb the mirrored trees in step (one gather per hop through the
    flat parent table), merging every few hops where they meet.
    """
    src, dst, pred, parent = delta
    k = weight.shape[1]
    carried = forest_sums(parent, weight)
    has = pred >= 0
    loads = np.zeros(graph.num_links * k)
    _add(loads, graph.links_of(pred[has], dst[has]), carried[has])
    attach = has & (parent < 0) & (carried != 0).any(axis=1)
    n = trees.dist.shape[0]
    links = tree_links.ravel()
    key, w = src[attach] * n + pred[attach], carried[attach]
    first: IntArray | None = None
    hops = 0
    while len(key):
        link = links[key]
        live = link >= 0
        if not live.all():
            key, w, link = key[live], w[live], link[live]
        _add(loads, link, w)
        key = trees.up[key]
        hops += 1
        if hops % _MERGE_EVERY == 0 and len(key) > 1:
            if first is None:
                first = np.empty(n * n, dtype=np.int64)
            key, w = _merge(key, w, first)
    return loads.reshape(-1, k)


def _merge(key: IntArray, w: FloatArray, first: IntArray) -> tuple[IntArray, FloatArray]:
    """Walkers at the same tree entry become one carrying their summed weight."""
    positions = np.arange(len(key), dtype=np.int64)
    first[key[::-1]] = positions[::-1]
    group = first[key]
    merged = np.zeros(len(key) * w.shape[1])
    _add(merged, group, w)
    keep = group == positions
    return key[keep], merged.reshape(-1, w.shape[1])[keep]


def _add(flat: FloatArray, index: IntArray, weight: FloatArray) -> None:
    """``flat.reshape(-1, k)[index] += weight`` with repeated indices, in one bincount."""
    k = weight.shape[1]
    slots = (index[:, None] * k + np.arange(k)).ravel()
    flat += np.bincount(slots, weights=weight.ravel(), minlength=len(flat))
