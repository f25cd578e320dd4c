"""The digital twin: a mirror of the live mesh that answers what-if questions.

The twin keeps one shortest-path tree per source for the mirrored state (links
up or down, nodes up or down, link costs).  A what-if touches only the pairs
whose path it can change (see :mod:`x0tta6bl4.twin._delta`): at 1,000 nodes a
link or node failure answers in milliseconds.  Mirroring a new live state
recomputes every tree (hundreds of milliseconds at 1,000 nodes), so callers
on an event loop run it in a worker.

Memory: five ``n x n`` matrices (~28 bytes per node pair); hence ``max_nodes``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_array

from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mesh.topology import Topology
from x0tta6bl4.twin._delta import Delta, added_edges, repair, unique_pairs
from x0tta6bl4.twin._forest import fold_or, path_loads, row_loads
from x0tta6bl4.twin._graph import (
    BoolArray,
    FloatArray,
    IndexedGraph,
    IntArray,
    Trees,
    build_trees,
    crosses,
    parents,
)
from x0tta6bl4.twin._result import WhatIfResult

__all__ = ["DEFAULT_MAX_NODES", "DigitalTwin", "LinkSpec", "Traffic", "TwinState"]

DEFAULT_MAX_NODES = 4000
"""Largest mesh a twin mirrors (~450 MB of path matrices at this size)."""

LinkSpec = str | tuple[str, str]
Traffic = Mapping[tuple[str, str], float] | npt.NDArray[np.float64]
"""Demand in Mbps: ``{(src, dst): mbps}`` or an ``n x n`` matrix in node order."""


@dataclass(frozen=True)
class TwinState:
    """The mirrored live state: what is down, and costs that differ from the topology."""

    down_links: frozenset[str]
    down_nodes: frozenset[str]
    costs: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "down_links": sorted(self.down_links),
            "down_nodes": sorted(self.down_nodes),
            "costs": dict(self.costs),
        }


@dataclass
class _Mirror:
    """The mirrored state with its trees and lazily built helpers."""

    link_alive: BoolArray
    node_alive: BoolArray
    cost: FloatArray
    trees: Trees
    label: IntArray
    tree_links: IntArray
    impaired: dict[tuple[frozenset[int], frozenset[int]], npt.NDArray[np.bool_]] = field(
        default_factory=dict
    )


class DigitalTwin:
    """Mirrors a mesh's topology and link state; answers :meth:`what_if`.

    Args:
        topology: the mesh as built (nodes, links, default costs and capacities).
        max_nodes: refuse larger topologies (memory grows with the node count squared).
    """

    def __init__(self, topology: Topology, *, max_nodes: int = DEFAULT_MAX_NODES) -> None:
        if len(topology) > max_nodes:
            raise TopologyError(
                f"the twin mirrors at most {max_nodes} nodes, this topology has {len(topology)}",
                fix="raise max_nodes if the host has ~28 bytes x nodes^2 of memory to spare",
            )
        self.graph = IndexedGraph(topology)
        self._link_up = np.ones(self.graph.num_links, dtype=bool)
        self._node_up = np.ones(self.graph.n, dtype=bool)
        self._cost = self.graph.cost.copy()
        self._mirror: _Mirror | None = None

    @property
    def topology(self) -> Topology:
        return self.graph.topology

    # --- mirroring -----------------------------------------------------------

    def mirror(
        self,
        *,
        down_links: Iterable[LinkSpec] = (),
        down_nodes: Iterable[str] = (),
        costs: Mapping[str, float] | None = None,
    ) -> bool:
        """Set the live state (everything not named is up at its topology cost).

        Returns whether the state changed; trees are recomputed on next use.
        """
        link_up = np.ones(self.graph.num_links, dtype=bool)
        link_up[self._link_ids(down_links)] = False
        node_up = np.ones(self.graph.n, dtype=bool)
        node_up[self._node_ids(down_nodes)] = False
        cost = self._with_costs(self.graph.cost.copy(), costs or {})
        changed = not (
            np.array_equal(link_up, self._link_up)
            and np.array_equal(node_up, self._node_up)
            and np.array_equal(cost, self._cost)
        )
        if changed:
            self._link_up, self._node_up, self._cost = link_up, node_up, cost
            self._mirror = None
        return changed

    def state(self) -> TwinState:
        g = self.graph
        return TwinState(
            down_links=frozenset(g.link_keys[i] for i in np.flatnonzero(~self._link_up)),
            down_nodes=frozenset(g.names[i] for i in np.flatnonzero(~self._node_up)),
            costs={
                g.link_keys[i]: float(self._cost[i]) for i in np.flatnonzero(self._cost != g.cost)
            },
        )

    def prepare(self) -> None:
        """Compute the mirrored state's trees now instead of on the first what-if."""
        self._current()

    def reachable(self, src: str, dst: str) -> bool:
        """Whether the mirrored state has a path between two nodes."""
        label = self._current().label
        a, b = label[self.graph.node(src)], label[self.graph.node(dst)]
        return bool(a >= 0 and a == b)

    # --- what-if -------------------------------------------------------------

    def what_if(
        self,
        fail_links: Iterable[LinkSpec] = (),
        fail_nodes: Iterable[str] = (),
        traffic: Traffic | None = None,
        *,
        restore_links: Iterable[LinkSpec] = (),
        restore_nodes: Iterable[str] = (),
        set_costs: Mapping[str, float] | None = None,
        impaired_links: Iterable[LinkSpec] = (),
        impaired_nodes: Iterable[str] = (),
    ) -> WhatIfResult:
        """Predict the effect of a scenario on top of the mirrored state.

        Args:
            fail_links: links to take down (``"a-b"`` or ``(a, b)``).
            fail_nodes: nodes to take down (with all their links).
            traffic: demand matrix in Mbps; without it, load is counted in
                routed node pairs (every ordered pair one unit).
            restore_links: links down in the mirror to bring back up.
            restore_nodes: nodes down in the mirror to bring back up.
            set_costs: new costs of links (``{"a-b": cost}``).
            impaired_links: links that carry traffic badly (loss, forged
                routes); routes crossing them are counted as impaired.
            impaired_nodes: nodes likewise (as transit or as an end).
        """
        started = time.perf_counter()
        g, now = self.graph, self._current()
        failed_l, restored_l = self._link_ids(fail_links), self._link_ids(restore_links)
        failed_n, restored_n = self._node_ids(fail_nodes), self._node_ids(restore_nodes)
        if set(failed_l) & set(restored_l) or set(failed_n) & set(restored_n):
            raise TopologyError(
                "a scenario cannot both fail and restore the same element",
                fix="name each link or node in one list only",
            )
        node_alive = self._node_up.copy()
        node_alive[failed_n], node_alive[restored_n] = False, True
        link_up = self._link_up.copy()
        link_up[failed_l], link_up[restored_l] = False, True
        link_alive = link_up & node_alive[g.lu] & node_alive[g.lv]
        cost = self._with_costs(now.cost.copy(), set_costs or {})

        gone = now.link_alive & ~link_alive
        dead = now.node_alive & ~node_alive
        adjacency = g.adjacency(link_alive, cost)
        delta = self._delta(now, adjacency, link_alive, node_alive, cost, gone, dead)

        s, t = delta.src, delta.dst
        alive_pair = node_alive[s] & node_alive[t]
        reach0 = np.isfinite(delta.dist0)
        reach1 = np.isfinite(delta.dist1) & alive_pair
        lost = reach0 & ~reach1 & alive_pair
        moved = fold_or(delta.parent1, delta.pred1 != delta.pred0, np.zeros(len(delta), bool))
        changed = reach0 & reach1 & (moved | (delta.dist1 != delta.dist0))

        columns = [np.ones(len(delta)), _pair_hash(s, t)]
        if traffic is not None:
            demand = self._demand(traffic)
            columns.append(demand[s, t])
        shifts = self._shift(now, delta, reach0, reach1, np.stack(columns, axis=1))
        overloaded: list[str] = []
        if traffic is None:
            load_unit, shift = "pairs", shifts[:, 0]
        else:
            load_unit, shift = "mbps", shifts[:, 2]
            load_after = self._base_load(now, demand) + shift
            overloaded = [g.link_keys[i] for i in np.flatnonzero(load_after > g.capacity_mbps)]
        affected = np.flatnonzero(gone | (np.abs(shifts[:, 1]) > 1e-6))

        impaired = (0, 0)
        if impaired_links or impaired_nodes:
            impaired = self._impaired(
                now,
                delta,
                reach0,
                reach1,
                self._link_ids(impaired_links),
                self._node_ids(impaired_nodes),
            )
        label = g.components(adjacency, node_alive)
        changed_pairs, changed_at = _unordered(s[changed], t[changed], g.n)
        lost_pairs, _ = _unordered(s[lost], t[lost], g.n)
        return WhatIfResult(
            names=g.names,
            failed_links=[g.link_keys[i] for i in np.flatnonzero(gone)],
            failed_nodes=[g.names[i] for i in np.flatnonzero(dead)],
            links_affected=[g.link_keys[i] for i in affected],
            load_shift={
                g.link_keys[i]: float(shift[i]) for i in np.flatnonzero(np.abs(shift) > 1e-9)
            },
            load_unit=load_unit,
            overloaded_links=overloaded,
            partitions=self._cut_off(now.label, label),
            reachable_pairs_before=_connected_pairs(now.label),
            reachable_pairs_after=_connected_pairs(label),
            impaired_routes_before=impaired[0],
            impaired_routes_after=impaired[1],
            pairs_recomputed=len(delta),
            elapsed_ms=(time.perf_counter() - started) * 1e3,
            lost_idx=lost_pairs,
            changed_idx=changed_pairs,
            changed_cost=np.stack(
                [delta.dist0[changed][changed_at], delta.dist1[changed][changed_at]], axis=1
            ),
            component=label,
        )

    # --- internals -----------------------------------------------------------

    def _current(self) -> _Mirror:
        if self._mirror is None:
            g = self.graph
            link_alive = self._link_up & self._node_up[g.lu] & self._node_up[g.lv]
            adjacency = g.adjacency(link_alive, self._cost)
            trees = build_trees(adjacency)
            self._mirror = _Mirror(
                link_alive=link_alive,
                node_alive=self._node_up.copy(),
                cost=self._cost.copy(),
                trees=trees,
                label=g.components(adjacency, self._node_up),
                tree_links=_tree_links(g, trees),
            )
        return self._mirror

    def _delta(
        self,
        now: _Mirror,
        adjacency: csr_array,
        link_alive: BoolArray,
        node_alive: BoolArray,
        cost: FloatArray,
        gone: BoolArray,
        dead: BoolArray,
    ) -> Delta:
        g, trees = self.graph, now.trees
        touched = np.flatnonzero(gone | (now.link_alive & link_alive & (cost > now.cost)))
        lu, lv = g.lu[touched], g.lv[touched]
        rows_v, at_v = np.nonzero(trees.pred[:, lv] == lu)
        rows_u, at_u = np.nonzero(trees.pred[:, lu] == lv)
        dead_ids = np.flatnonzero(dead)
        rows_x, at_x = np.nonzero(np.isfinite(trees.dist[:, dead_ids]))
        tops = (
            np.concatenate([rows_v, rows_u, rows_x]).astype(np.int64),
            np.concatenate([lv[at_v], lu[at_u], dead_ids[at_x]]).astype(np.int64),
        )
        src, dst, dist, pred = repair(trees, adjacency, tops, node_alive)
        added = [
            (int(g.lu[i]), int(g.lv[i]), float(cost[i]))
            for i in np.flatnonzero(link_alive & (~now.link_alive | (cost < now.cost)))
        ]
        if added:
            base_pred = np.where(trees.pred >= 0, trees.pred, -1).astype(np.int64)
            full_dist, full_pred = trees.dist.copy(), base_pred.copy()
            full_dist[src, dst], full_pred[src, dst] = dist, pred
            added_edges(full_dist, full_pred, added)
            flat = np.flatnonzero((full_dist != trees.dist) | (full_pred != base_pred))
            src, dst = flat // g.n, flat % g.n
            dist, pred = full_dist.ravel()[flat], full_pred.ravel()[flat]
        return Delta.of(trees, src, dst, dist, pred)

    def _shift(
        self, now: _Mirror, delta: Delta, reach0: BoolArray, reach1: BoolArray, demand: FloatArray
    ) -> FloatArray:
        g, trees, links = self.graph, now.trees, now.tree_links
        s, t = delta.src, delta.dst
        old, new = demand * reach0[:, None], demand * reach1[:, None]
        before = path_loads(g, trees, links, (s, t, delta.pred0, delta.parent0), old)
        after = path_loads(g, trees, links, (s, t, delta.pred1, delta.parent1), new)
        return after - before

    def _base_load(self, now: _Mirror, demand: FloatArray) -> FloatArray:
        """Per-link load of ``demand`` in the mirrored state."""
        routed = (demand * np.isfinite(now.trees.dist))[:, :, None]
        rows = np.arange(self.graph.n)
        return row_loads(now.trees, now.tree_links, rows, routed, self.graph.num_links)[:, 0]

    def _impaired(
        self,
        now: _Mirror,
        delta: Delta,
        reach0: BoolArray,
        reach1: BoolArray,
        bad_links: list[int],
        bad_nodes: list[int],
    ) -> tuple[int, int]:
        """Routes (ordered pairs) crossing an impaired element, before and after."""
        g, n = self.graph, self.graph.n
        bad_link = np.zeros(g.num_links + 1, dtype=bool)  # index -1: no tree edge
        bad_link[bad_links] = True
        bad_node = np.zeros(n, dtype=bool)
        bad_node[bad_nodes] = True
        key = (frozenset(bad_links), frozenset(bad_nodes))
        if key not in now.impaired:
            marks = bad_link[now.tree_links] | bad_node[None, :]
            flags = crosses(parents(now.trees.pred), marks.ravel()).reshape(n, n)
            off_diag = ~np.eye(n, dtype=bool)
            now.impaired[key] = flags & np.isfinite(now.trees.dist) & off_diag
        before_flags = now.impaired[key]
        s, t = delta.src, delta.dst
        own = bad_node[t] | bad_link[np.where(delta.pred1 >= 0, g.links_of(delta.pred1, t), -1)]
        above = before_flags[s, np.maximum(delta.pred1, 0)] | bad_node[s]
        after_flags = fold_or(delta.parent1, own, above)
        before = int(before_flags.sum())
        after = (
            before - int((before_flags[s, t] & reach0).sum()) + int((after_flags & reach1).sum())
        )
        return before, after

    def _cut_off(self, label0: IntArray, label1: IntArray) -> list[list[str]]:
        """Parts that lost their connection to the rest of their former component."""
        groups: dict[int, dict[int, list[str]]] = {}
        for node in np.flatnonzero(label1 >= 0):
            groups.setdefault(int(label0[node]), {}).setdefault(int(label1[node]), []).append(
                self.graph.names[node]
            )
        cut: list[list[str]] = []
        for was, parts in groups.items():
            if was >= 0 and len(parts) > 1:
                ranked = sorted(parts.values(), key=len, reverse=True)
                cut.extend(sorted(part) for part in ranked[1:])
        return cut

    def _link_ids(self, specs: Iterable[LinkSpec]) -> list[int]:
        return [self.graph.link(spec) for spec in specs]

    def _node_ids(self, names: Iterable[str]) -> list[int]:
        return [self.graph.node(name) for name in names]

    def _with_costs(self, cost: FloatArray, costs: Mapping[str, float]) -> FloatArray:
        for spec, value in costs.items():
            if not value > 0:
                raise TopologyError(
                    f"cost of link {spec} must be > 0, got {value}", fix="give a positive cost"
                )
            cost[self.graph.link(spec)] = float(value)
        return cost

    def _demand(self, traffic: Traffic) -> FloatArray:
        n = self.graph.n
        if isinstance(traffic, np.ndarray):
            if traffic.shape != (n, n):
                raise TopologyError(
                    f"traffic matrix has shape {traffic.shape}, expected ({n}, {n})",
                    fix="give one row and one column per node, in topology order",
                )
            return traffic.astype(np.float64, copy=False)
        demand = np.zeros((n, n))
        for (src, dst), mbps in traffic.items():
            if mbps < 0:
                raise TopologyError(
                    f"traffic {src}->{dst} is negative ({mbps} Mbps)", fix="give demands >= 0"
                )
            demand[self.graph.node(src), self.graph.node(dst)] += mbps
        return demand


def _tree_links(graph: IndexedGraph, trees: Trees) -> IntArray:
    """Link index of the tree edge into every entry; -1 for roots and unreachable."""
    pred = trees.pred
    has = pred >= 0
    links = np.full(pred.shape, -1, dtype=np.int64)
    cols = np.broadcast_to(np.arange(graph.n), pred.shape)
    links[has] = graph.links_of(pred[has].astype(np.int64), cols[has])
    return links


def _pair_hash(src: IntArray, dst: IntArray) -> FloatArray:
    """A weight in [1, 2) per route that differs between routes: a link's sum of these
    changes exactly when the set of routes crossing it changes (barring a 1e-6 fluke)."""
    mixed = (src * 2654435761 + dst * 40503 + 12345) % 1000003
    return 1.0 + mixed / 1000003.0


def _unordered(src: IntArray, dst: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Distinct unordered pairs, and the position of each one's first occurrence."""
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    first = unique_pairs(n, lo, hi)
    return np.stack([lo[first], hi[first]], axis=1), first


def _connected_pairs(label: IntArray) -> int:
    sizes = np.bincount(label[label >= 0])
    return int((sizes * (sizes - 1) // 2).sum())
