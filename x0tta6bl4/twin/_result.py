"""What a what-if answers: kept as arrays, turned into names only when asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PairChange", "WhatIfResult"]


@dataclass(frozen=True)
class PairChange:
    """A pair of nodes that stays connected over another path or at another cost."""

    src: str
    dst: str
    old_cost: float
    new_cost: float

    @property
    def delta(self) -> float:
        return self.new_cost - self.old_cost


@dataclass(frozen=True)
class WhatIfResult:
    """The predicted effect of a scenario on the mirrored mesh.

    Pairs are unordered (``src < dst`` by node order) and only between nodes
    alive in the scenario; pairs with a failed node are counted in
    :attr:`failed_nodes` instead.

    Attributes:
        failed_links: links that go down in the scenario (named, or at a failed node).
        failed_nodes: nodes that go down in the scenario.
        links_affected: the failed links plus every link whose set of routed
            pairs changes.
        load_shift: per-link change of routed load, only non-zero entries;
            in Mbps with a traffic matrix, else in routed pairs.
        load_unit: ``"mbps"`` or ``"pairs"``.
        overloaded_links: links whose load exceeds capacity afterwards (Mbps only).
        partitions: node sets cut off from the rest by the scenario.
        reachable_pairs_before/after: connected unordered pairs of alive nodes.
        impaired_routes_before/after: routes (ordered pairs) whose path crosses
            an impaired link or node (0 unless impairments were given).
        pairs_recomputed: routes the twin recomputed (all others provably kept
            their path).
        elapsed_ms: time the twin took.
    """

    names: list[str] = field(repr=False)
    failed_links: list[str]
    failed_nodes: list[str]
    links_affected: list[str]
    load_shift: dict[str, float]
    load_unit: str
    overloaded_links: list[str]
    partitions: list[list[str]]
    reachable_pairs_before: int
    reachable_pairs_after: int
    impaired_routes_before: int
    impaired_routes_after: int
    pairs_recomputed: int
    elapsed_ms: float
    lost_idx: npt.NDArray[np.int64] = field(repr=False)
    """``[m, 2]`` node indices of the pairs that lose reachability."""
    changed_idx: npt.NDArray[np.int64] = field(repr=False)
    """``[m, 2]`` node indices of the pairs whose path or cost changes."""
    changed_cost: npt.NDArray[np.float64] = field(repr=False)
    """``[m, 2]`` old and new cost of each changed pair."""
    component: npt.NDArray[np.int64] = field(repr=False)
    """Component label of every node afterwards; -1 for failed nodes."""

    @property
    def partitions_created(self) -> int:
        return len(self.partitions)

    @property
    def num_lost_pairs(self) -> int:
        return len(self.lost_idx)

    @property
    def num_changed_pairs(self) -> int:
        return len(self.changed_idx)

    @cached_property
    def lost_pairs(self) -> list[tuple[str, str]]:
        return [(self.names[a], self.names[b]) for a, b in self.lost_idx.tolist()]

    @cached_property
    def changed_pairs(self) -> list[PairChange]:
        return [
            PairChange(self.names[a], self.names[b], old, new)
            for (a, b), (old, new) in zip(
                self.changed_idx.tolist(), self.changed_cost.tolist(), strict=True
            )
        ]

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def reachable(self, src: str, dst: str) -> bool:
        """Whether the scenario leaves a path between ``src`` and ``dst``."""
        a, b = self.component[self._index[src]], self.component[self._index[dst]]
        return bool(a >= 0 and a == b)

    def to_dict(self, limit: int | None = 100) -> dict[str, Any]:
        """JSON-ready summary; lists of pairs cut to ``limit`` entries (None: all).

        ``components`` is each node's component label afterwards (-1: failed),
        in topology order: two nodes stay connected when their labels match.
        """
        cut = slice(None) if limit is None else slice(limit)
        biggest = sorted(self.load_shift.items(), key=lambda kv: -abs(kv[1]))
        return {
            "nodes": len(self.names),
            "failed_links": self.failed_links,
            "failed_nodes": self.failed_nodes,
            "links_affected": len(self.links_affected),
            "links_affected_names": self.links_affected[cut],
            "lost_pairs": self.num_lost_pairs,
            "lost_pairs_sample": [list(p) for p in self.lost_pairs[cut]],
            "changed_pairs": self.num_changed_pairs,
            "changed_pairs_sample": [
                {
                    "src": c.src,
                    "dst": c.dst,
                    "old_cost": c.old_cost,
                    "new_cost": c.new_cost,
                    "delta": c.delta,
                }
                for c in self.changed_pairs[cut]
            ],
            "partitions_created": self.partitions_created,
            "partitions": self.partitions[cut],
            "load_unit": self.load_unit,
            "load_shift": dict(biggest[cut]),
            "overloaded_links": self.overloaded_links,
            "reachable_pairs_before": self.reachable_pairs_before,
            "reachable_pairs_after": self.reachable_pairs_after,
            "impaired_routes_before": self.impaired_routes_before,
            "impaired_routes_after": self.impaired_routes_after,
            "pairs_recomputed": self.pairs_recomputed,
            "components": self.component.tolist(),
            "elapsed_ms": round(self.elapsed_ms, 3),
        }
