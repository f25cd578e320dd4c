"""Standard RCA baselines, run on the same cases as the model.

* random ranking;
* BARO-style: each metric is robust-scaled by the median and inter-quartile
  range of its history before the anomaly, an entity scores the largest
  scaled deviation of any of its metrics after the start (BARO's RCA step,
  with the IQR floored at the metric's noise floor so a flat metric cannot
  divide by zero);
* PageRank: personalised PageRank on the node-link graph, personalised by the
  BARO scores and walking towards anomalous neighbours (MicroRCA-style), so
  an entity surrounded by anomalies ranks high.

The non-graph MLP baseline is :class:`~x0tta6bl4.ml.model.RcaGNN` with
``layers=0`` on the same features (see ``benchmarks/rca.py``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from x0tta6bl4.ml.features import AFTER_S, BEFORE_S, CaseGraph
from x0tta6bl4.ml.schema import METRIC_FLOOR

__all__ = ["baro_scores", "pagerank_scores", "random_scores"]

Array = npt.NDArray[np.float64]


def random_scores(graph: CaseGraph, rng: np.random.Generator) -> Array:
    """A uniformly random ranking."""
    return rng.random(len(graph.entities))


def baro_scores(
    times: Array, values: npt.NDArray[np.floating], anomaly_start: float, graph: CaseGraph
) -> Array:
    """Largest robust-scaled deviation of each entity's metrics after the start."""
    vals = np.asarray(values, dtype=np.float64)
    start = int(np.searchsorted(times, anomaly_start))
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    before = vals[max(0, start - round(BEFORE_S / dt)) : start]
    after = vals[start : start + round(AFTER_S / dt)]
    with np.errstate(all="ignore"):
        med = _nanq(before, 50)
        iqr = _nanq(before, 75) - _nanq(before, 25)
        floor = np.array([METRIC_FLOOR.get(m, 1e-3) for m in graph.col_metric])
        scaled = np.abs(after - med) / np.maximum(np.nan_to_num(iqr), floor)
        # a metric that stops reporting is as anomalous as the largest deviation seen
        worst = np.where(
            np.isnan(after).all(axis=0),
            np.inf,
            np.nanmax(np.where(np.isnan(scaled), -1, scaled), axis=0),
        )
    worst = np.nan_to_num(worst, nan=0.0, posinf=1e6)
    scores = np.zeros(len(graph.entities))
    np.maximum.at(scores, graph.col_entity, worst)
    return scores


def _nanq(a: Array, q: float) -> Array:
    out = np.full(a.shape[1], np.nan)
    ok = ~np.isnan(a).all(axis=0)
    if ok.any():
        out[ok] = np.nanpercentile(a[:, ok], q, axis=0)
    return out


def pagerank_scores(
    graph: CaseGraph, anomaly: Array, damping: float = 0.85, iterations: int = 50
) -> Array:
    """Personalised PageRank over the node-link graph, walking towards anomalous vertices."""
    n = len(graph.entities)
    a = np.log1p(np.maximum(np.asarray(anomaly, dtype=np.float64), 0))
    personal = a + 1e-6
    personal /= personal.sum()
    src, dst = graph.edge_index
    if src.size == 0:
        return personal
    weight = a[dst] + 1e-6
    out_sum = np.bincount(src, weight, n)
    share = weight / out_sum[src]
    rank = personal.copy()
    for _ in range(iterations):
        flow = np.bincount(dst, rank[src] * share, n)
        dangling = rank[out_sum == 0].sum()
        rank = (1 - damping) * personal + damping * (flow + dangling * personal)
    return rank
