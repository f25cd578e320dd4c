"""Array form of a topology and its shortest-path trees, one per source.

Nodes are rows ``0..n-1``; links are entries ``0..L-1`` with ends ``lu``/``lv``.
:func:`build_trees` runs :func:`scipy.sparse.csgraph.dijkstra` from every
source and adds, per tree, a preorder numbering and subtree sizes: the
subtree below any node of any tree is then one contiguous slice of
``order[s]``, which is what lets a what-if touch only the pairs it changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components, dijkstra

from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mesh.topology import Topology

__all__ = ["NO_PRED", "IndexedGraph", "Trees", "build_trees", "crosses", "jump_depth"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NO_PRED = -9999
"""scipy's predecessor value for a tree root or an unreachable node."""


class IndexedGraph:
    """A :class:`Topology` as arrays: node index, link ends, costs, capacities."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.names: list[str] = topology.names
        self.index: dict[str, int] = {name: i for i, name in enumerate(self.names)}
        self.n = len(self.names)
        self.link_keys: list[str] = [link.key for link in topology.links]
        self.link_index: dict[str, int] = {key: i for i, key in enumerate(self.link_keys)}
        self.lu = np.array([self.index[link.a] for link in topology.links], dtype=np.int64)
        self.lv = np.array([self.index[link.b] for link in topology.links], dtype=np.int64)
        self.cost = np.array([link.cost for link in topology.links], dtype=np.float64)
        self.capacity_mbps = np.array(
            [link.capacity_mbps for link in topology.links], dtype=np.float64
        )
        pair = np.minimum(self.lu, self.lv) * self.n + np.maximum(self.lu, self.lv)
        self._order = np.argsort(pair)
        self._sorted_pairs = pair[self._order]

    @property
    def num_links(self) -> int:
        return len(self.link_keys)

    def node(self, name: str) -> int:
        try:
            return self.index[name]
        except KeyError:
            raise TopologyError(
                f"unknown node {name!r}", fix="use a node name of the topology", node=name
            ) from None

    def link(self, spec: str | tuple[str, str]) -> int:
        """The index of a link given as ``"a-b"`` (either order) or ``(a, b)``."""
        found = -1
        if isinstance(spec, tuple):
            found = self._between(self.node(spec[0]), self.node(spec[1]))
        else:
            found = self.link_index.get(spec, -1)
            dash = spec.find("-")
            while found < 0 and dash > 0:
                a, b = spec[:dash], spec[dash + 1 :]
                if a in self.index and b in self.index:
                    found = self._between(self.index[a], self.index[b])
                dash = spec.find("-", dash + 1)
        if found < 0:
            raise TopologyError(
                f"no link {spec!r} in the topology",
                fix="name a link by its two ends, e.g. n3-n4",
                link=str(spec),
            )
        return found

    def _between(self, a: int, b: int) -> int:
        return int(self.links_of(np.array([a]), np.array([b]))[0])

    def links_of(self, a: IntArray, b: IntArray) -> IntArray:
        """Link index of each pair ``(a[i], b[i])``; -1 where there is no link."""
        key = np.minimum(a, b) * self.n + np.maximum(a, b)
        if len(self._sorted_pairs) == 0:
            return np.full(len(key), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_pairs, key), len(self._sorted_pairs) - 1)
        return np.where(self._sorted_pairs[pos] == key, self._order[pos], -1)

    def links_at(self, nodes: Iterable[int]) -> IntArray:
        """Indices of the links with an end in ``nodes``."""
        mask = np.zeros(self.n, dtype=bool)
        mask[list(nodes)] = True
        return np.flatnonzero(mask[self.lu] | mask[self.lv])

    def adjacency(self, link_alive: BoolArray, cost: FloatArray) -> csr_array:
        """The symmetric weighted adjacency of the alive links."""
        keep = np.flatnonzero(link_alive)
        rows = np.concatenate([self.lu[keep], self.lv[keep]])
        cols = np.concatenate([self.lv[keep], self.lu[keep]])
        return csr_array((np.tile(cost[keep], 2), (rows, cols)), shape=(self.n, self.n))

    def components(self, adjacency: csr_array, node_alive: BoolArray) -> IntArray:
        """Component label of every node; -1 for nodes that are not alive."""
        _count, labels = connected_components(adjacency, directed=False)
        return np.where(node_alive, labels, -1).astype(np.int64)


@dataclass
class Trees:
    """Shortest-path trees from every source, with preorder intervals.

    ``pre[s, t]`` is ``t``'s position in a depth-first walk of tree ``s`` and
    ``size[s, t]`` the size of ``t``'s subtree, so the subtree is
    ``order[s, pre[s, t] : pre[s, t] + size[s, t]]``.  Unreachable entries have
    ``pre = -1`` and ``size = 0``.
    """

    dist: FloatArray
    pred: npt.NDArray[np.int32]
    up: IntArray
    """Flat index ``s * n + pred[s, t]`` of each entry's parent (roots: themselves)."""
    pre: npt.NDArray[np.int32]
    size: npt.NDArray[np.int32]
    order: npt.NDArray[np.int32]

    def subtrees(self, src: IntArray, top: IntArray) -> tuple[IntArray, IntArray]:
        """Every ``(s, t)`` with ``t`` in the subtree of ``top[i]`` in tree ``src[i]``."""
        sizes = self.size[src, top].astype(np.int64)
        total = int(sizes.sum())
        row = np.repeat(src, sizes)
        offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        col = np.repeat(self.pre[src, top].astype(np.int64), sizes) + offset
        return row, self.order[row, col].astype(np.int64)


def build_trees(adjacency: csr_array) -> Trees:
    """Shortest paths from every node, numbered for subtree slicing."""
    dist, pred = dijkstra(adjacency, directed=False, return_predecessors=True)
    n = dist.shape[0]
    reach = np.isfinite(dist).ravel()
    parent = parents(pred)
    depth = jump_depth(parent)
    by_depth = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(depth.max(initial=0) + 2))

    size = reach.astype(np.int64)
    for level in range(len(bounds) - 2, 0, -1):
        idx = by_depth[bounds[level] : bounds[level + 1]]
        np.add.at(size, parent[idx], size[idx])

    # Position among siblings: exclusive running sum of sizes within each parent.
    child = np.flatnonzero(reach & (depth > 0))
    sib = child[np.lexsort((child, parent[child]))]
    running = np.cumsum(size[sib]) - size[sib]
    first = np.r_[True, parent[sib][1:] != parent[sib][:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(sib)), 0))
    offset = np.zeros(n * n, dtype=np.int64)
    offset[sib] = running - running[group_start]

    pre = np.where(reach, 0, -1).astype(np.int64)
    for level in range(1, len(bounds) - 1):
        idx = by_depth[bounds[level] : bounds[level + 1]]
        pre[idx] = pre[parent[idx]] + 1 + offset[idx]
    order = np.full((n, n), -1, dtype=np.int32)
    hit = np.flatnonzero(reach)
    order[hit // n, pre[hit]] = hit % n
    return Trees(
        dist=dist,
        pred=pred.astype(np.int32),
        up=parent,
        pre=pre.reshape(n, n).astype(np.int32),
        size=size.reshape(n, n).astype(np.int32),
        order=order,
    )


def parents(pred: npt.NDArray[np.int32] | IntArray) -> IntArray:
    """Flat parent index of each tree entry; a root or unreachable entry is its own parent."""
    k, n = pred.shape
    base = (np.arange(k, dtype=np.int64) * n)[:, None]
    own = base + np.arange(n, dtype=np.int64)[None, :]
    parent: IntArray = np.where(pred >= 0, base + pred, own).ravel()
    return parent


def jump_depth(parent: IntArray) -> IntArray:
    """Hops to the root for a forest given as a parent array (roots are their own parent)."""
    own = np.arange(len(parent), dtype=np.int64)
    depth: IntArray = (parent != own).astype(np.int64)
    while True:
        depth = depth + depth[parent]
        nxt: IntArray = parent[parent]
        if np.array_equal(nxt, parent):
            return depth
        parent = nxt


def crosses(parent: IntArray, marked: BoolArray) -> BoolArray:
    """For a forest given as a parent array: does the path from each entry up to its
    root (both included) contain a marked entry?  Pointer jumping, ``log2(depth)`` rounds.
    """
    flag = marked.copy()
    while True:
        flag |= flag[parent]
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            return flag
        parent = nxt
