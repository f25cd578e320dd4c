"""Why the model blamed an entity: integrated gradients over features and neighbours.

The attribution of input feature ``(v, f)`` to the root cause's logit is
integrated gradients (Sundararajan et al., 2017) from a baseline in which
nothing changed (every change feature zero, levels after equal to levels
before) to the observed features, ``steps`` points on the straight path,
evaluated in one batched forward/backward pass.  Attributions are summed per
(entity, metric) to name the metrics that drove the decision, and per entity
to name the neighbours whose symptoms supported it; then raw before/after
means turn them into words: "node n7: loss on n7-n9 rose 40x; neighbours n3,
n9 affected".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from x0tta6bl4.ml.features import FEATURES, PER_METRIC, SLOTS, CaseGraph
from x0tta6bl4.ml.model import RcaGNN
from x0tta6bl4.ml.schema import METRIC_FLOOR

__all__ = ["Driver", "Explanation", "explain", "integrated_gradients"]

_WIDTH = len(PER_METRIC)
_CHANGE = [
    i
    for i, name in enumerate(FEATURES)
    if name.rsplit(".", 1)[-1] in ("z50", "z80", "z20", "log_ratio", "missing")
]
_SUMMARY = [
    FEATURES.index(n) for n in ("max_abs_z", "mean_abs_z", "changed_share", "missing_share")
]
_LEVELS = [(FEATURES.index(f"{m}.level_after"), FEATURES.index(f"{m}.level_before")) for m in SLOTS]
_UNITS = {
    "rtt_ms": " ms",
    "cpu": " %",
    "mbps": " Mbit/s",
    "fwd_mbps": " Mbit/s",
    "queue": " pkts",
    "drop_queue": " pkt/s",
    "drop_noroute": " pkt/s",
    "retrans": "/s",
}


def _baseline(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    base = x.copy()
    base[:, _CHANGE + _SUMMARY] = 0.0
    for after, before in _LEVELS:
        base[:, after] = base[:, before]
    return base


def integrated_gradients(
    model: RcaGNN, graph: CaseGraph, target: int, steps: int = 32
) -> npt.NDArray[np.float64]:
    """``[V, F]`` attributions of every input feature to ``target``'s logit."""
    x = torch.from_numpy(graph.x)
    base = torch.from_numpy(_baseline(graph.x))
    n = x.shape[0]
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = (base[None] + alphas[:, None, None] * (x - base)[None]).reshape(steps * n, -1)
    path.requires_grad_(True)
    edges = torch.from_numpy(graph.edge_index)
    stacked = torch.cat([edges + k * n for k in range(steps)], dim=1)
    was_training = model.training
    model.eval()
    try:
        out = model(path, stacked)
        out.view(steps, n)[:, target].sum().backward()
    finally:
        model.train(was_training)
    grads = path.grad.view(steps, n, -1).mean(dim=0)  # type: ignore[union-attr]
    return ((x - base) * grads).detach().numpy().astype(np.float64)


@dataclass(frozen=True)
class Driver:
    """A metric of an entity that pushed the score up, with its raw change."""

    entity: str
    metric: str
    weight: float
    before: float
    after: float
    missing: float

    def words(self) -> str:
        where = f"{self.metric} on {self.entity}"
        if self.missing >= 0.8:
            return f"{where} stopped reporting"
        b, a = self.before, self.after
        unit = _UNITS.get(self.metric, "")
        span = f"({_fmt(self.metric, b)} → {_fmt(self.metric, a)}{unit})"
        tiny = METRIC_FLOOR.get(self.metric, 1e-3) / 100
        if a > b and (b <= tiny or a / b >= 1.5):
            if b <= tiny:
                return f"{where} rose from 0 {span}"
            return f"{where} rose {_times(a / b)} {span}"
        if a < b and (a <= tiny or b / a >= 1.5):
            return (
                f"{where} fell to 0 {span}" if a <= tiny else f"{where} fell {_times(b / a)} {span}"
            )
        direction = "rose" if a > b else "fell"
        return f"{where} {direction} {span}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "metric": self.metric,
            "weight": round(self.weight, 4),
            "before": self.before,
            "after": self.after,
            "missing": self.missing,
            "text": self.words(),
        }


@dataclass
class Explanation:
    """Why ``entity`` ranks as a root cause, as data and in words."""

    entity: str
    entity_type: str
    score: float
    drivers: list[Driver] = field(default_factory=list)
    neighbours: list[tuple[str, float]] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = "; ".join(d.words() for d in self.drivers) or "no single metric stands out"
        tail = (
            f"; neighbours {', '.join(n for n, _ in self.neighbours)} affected"
            if self.neighbours
            else ""
        )
        return f"{self.entity_type} {self.entity}: {parts}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "entity_type": self.entity_type,
            "score": round(self.score, 4),
            "drivers": [d.to_dict() for d in self.drivers],
            "neighbours": [{"entity": n, "weight": round(w, 4)} for n, w in self.neighbours],
            "text": self.text,
        }


def explain(
    model: RcaGNN,
    graph: CaseGraph,
    target: int,
    score: float,
    steps: int = 32,
    max_drivers: int = 3,
    max_neighbours: int = 3,
) -> Explanation:
    """Explain the model's score of entity ``target`` in ``graph``."""
    attr = integrated_gradients(model, graph, target, steps)
    per_metric = (
        attr[:, : len(SLOTS) * _WIDTH].reshape(len(graph.entities), len(SLOTS), _WIDTH).sum(axis=2)
    )
    per_entity = attr.sum(axis=1)
    positive = np.clip(per_metric, 0, None)
    total = positive.sum() or 1.0
    drivers: list[Driver] = []
    for flat in np.argsort(-positive, axis=None):
        v, s = divmod(int(flat), len(SLOTS))
        weight = positive[v, s] / total
        if weight < 0.05 or len(drivers) >= max_drivers:
            break
        driver = _driver(graph, v, SLOTS[s], weight)
        if driver is not None:
            drivers.append(driver)
    push = np.clip(per_entity, 0, None)
    push[target] = 0.0
    share = push / (np.clip(per_entity, 0, None).sum() or 1.0)
    neighbours = [
        (graph.entities[int(v)], float(share[v]))
        for v in np.argsort(-share)[:max_neighbours]
        if share[v] >= 0.05
    ]
    kind = "link" if graph.is_link[target] else "node"
    return Explanation(graph.entities[target], kind, float(score), drivers, neighbours)


def _driver(graph: CaseGraph, v: int, metric: str, weight: float) -> Driver | None:
    cols = np.flatnonzero((graph.col_entity == v) & (np.asarray(graph.col_metric) == metric))
    if cols.size == 0:
        return None
    c = int(cols[0])
    return Driver(
        graph.entities[v],
        metric,
        float(weight),
        float(graph.mean_before[c]),
        float(graph.mean_after[c]),
        float(graph.missing_after[c]),
    )


def _times(ratio: float) -> str:
    return f"{ratio:.1f}x" if ratio < 10 else f"{ratio:.0f}x"


def _fmt(metric: str, value: float) -> str:
    if metric == "loss":
        return f"{100 * value:.1f} %"
    return f"{value:.3g}"
