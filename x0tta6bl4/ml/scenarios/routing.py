"""Shortest-path routing of flows over a topology, as the twin's traffic model needs it."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Sequence
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from x0tta6bl4.mesh.topology import Topology, link_key

__all__ = ["FlowRoutes", "route_flows", "shortest_tree"]


def shortest_tree(
    topology: Topology, source: str, dead_nodes: Collection[str] = ()
) -> dict[str, str]:
    """Dijkstra by link cost from ``source``; maps each reached node to its predecessor."""
    dist = {source: 0.0}
    pred: dict[str, str] = {}
    heap = [(0.0, source)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, float("inf")):
            continue
        for nxt in topology.neighbors(node):
            if nxt in dead_nodes:
                continue
            nd = d + topology.link(node, nxt).cost
            if nd < dist.get(nxt, float("inf")) - 1e-12 or (
                abs(nd - dist.get(nxt, float("inf"))) <= 1e-12 and node < pred.get(nxt, node)
            ):
                dist[nxt] = nd
                pred[nxt] = node
                heapq.heappush(heap, (nd, nxt))
    return pred


class FlowRoutes:
    """Incidence of flows on links and on nodes for one routing state.

    Attributes:
        link_inc: ``[flows, links]`` 1.0 where the flow crosses the link.
        node_inc: ``[flows, nodes]`` 1.0 where the flow transits the node (ends excluded).
        routed: ``[flows]`` whether the flow has a path at all.
        paths: node sequence of every routed flow (empty when unrouted).
    """

    def __init__(
        self,
        link_inc: npt.NDArray[np.float64],
        node_inc: npt.NDArray[np.float64],
        routed: npt.NDArray[np.bool_],
        paths: list[list[str]],
    ) -> None:
        self.link_inc = link_inc
        self.node_inc = node_inc
        self.routed = routed
        self.paths = paths


def route_flows(
    topology: Topology,
    flows: Sequence[tuple[str, str]],
    dead_nodes: Collection[str] = (),
) -> FlowRoutes:
    """Route every ``(src, dst)`` flow on its shortest path avoiding ``dead_nodes``."""
    link_index = {link.key: i for i, link in enumerate(topology.links)}
    node_index = {name: i for i, name in enumerate(topology.names)}
    link_inc = np.zeros((len(flows), len(link_index)))
    node_inc = np.zeros((len(flows), len(node_index)))
    routed = np.zeros(len(flows), dtype=bool)
    trees: dict[str, dict[str, str]] = {}
    paths: list[list[str]] = []
    for f, (src, dst) in enumerate(flows):
        if src in dead_nodes or dst in dead_nodes:
            paths.append([])
            continue
        tree = trees.get(src)
        if tree is None:
            tree = trees[src] = shortest_tree(topology, src, dead_nodes)
        if dst not in tree:
            paths.append([])
            continue
        path = [dst]
        while path[-1] != src:
            path.append(tree[path[-1]])
        path.reverse()
        paths.append(path)
        routed[f] = True
        for a, b in pairwise(path):
            link_inc[f, link_index[link_key(a, b)]] = 1.0
        for mid in path[1:-1]:
            node_inc[f, node_index[mid]] = 1.0
    return FlowRoutes(link_inc, node_inc, routed, paths)
