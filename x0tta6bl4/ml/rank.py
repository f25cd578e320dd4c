"""Root-cause analysis on any metrics table: the generic entry point and the analyzer.

:func:`rank_root_causes` takes a pandas DataFrame (rows = time, columns =
``"<entity>:<metric>"``) and an optional graph, and ranks the entities.  It
uses the shipped default model unless given another; :class:`Analyzer` adds
anomaly flags and explanations and is what the Trainer actor serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from x0tta6bl4.errors import MLError
from x0tta6bl4.mesh.topology import Topology
from x0tta6bl4.ml.explain import explain
from x0tta6bl4.ml.features import CaseGraph, featurize
from x0tta6bl4.ml.model import RcaGNN
from x0tta6bl4.ml.registry import DEFAULT_CHECKPOINT, load_checkpoint
from x0tta6bl4.ml.train import fault_kinds, full_logits

__all__ = ["Analyzer", "GraphLike", "estimate_anomaly_start", "frame_arrays", "rank_root_causes"]

GraphLike = Topology | Iterable[tuple[str, str]] | None
_default: list[RcaGNN] = []


def default_model() -> RcaGNN:
    """The model shipped with the package (loaded once)."""
    if not _default:
        _default.append(load_checkpoint(DEFAULT_CHECKPOINT)[0])
    return _default[0]


def frame_arrays(
    metrics: pd.DataFrame, anomaly_start: Any = None
) -> tuple[npt.NDArray[np.float64], list[str], npt.NDArray[np.float64], float | None]:
    """Times in seconds, columns, values and the start on the same axis, from a DataFrame.

    A DatetimeIndex becomes seconds since its first row (``anomaly_start`` may
    then be a timestamp); a numeric index is used as it is.
    """
    if not isinstance(metrics, pd.DataFrame) or metrics.empty:
        raise MLError(
            "metrics must be a non-empty pandas DataFrame",
            fix="rows = time, columns = '<entity>:<metric>'",
        )
    frame = metrics.sort_index()
    index = frame.index
    start: float | None = None
    if isinstance(index, pd.DatetimeIndex):
        origin = index[0]
        times = np.asarray((index - origin).total_seconds(), dtype=np.float64)
        if anomaly_start is not None:
            start = float((pd.Timestamp(anomaly_start) - origin).total_seconds())
    else:
        try:
            times = index.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MLError(
                "the metrics index is neither numeric nor datetime", fix="index rows by time"
            ) from exc
        if anomaly_start is not None:
            start = float(anomaly_start)
    try:
        values = frame.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MLError(
            f"metrics hold non-numeric values: {exc}", fix="keep only numeric columns"
        ) from exc
    return times, [str(c) for c in frame.columns], values, start


def estimate_anomaly_start(
    times: npt.NDArray[np.float64], values: npt.NDArray[np.float64]
) -> float:
    """The time that best splits the series into a before and a different after.

    For every candidate split the change of each column's mean, in units of
    its standard deviation before, is summed over columns; the largest wins.
    """
    t = len(times)
    if t < 8:
        raise MLError(
            f"{t} samples are too few to find when the anomaly began", fix="pass anomaly_start"
        )
    vals = np.nan_to_num(values, nan=0.0)
    cums, cums2 = np.cumsum(vals, axis=0), np.cumsum(vals**2, axis=0)
    best, best_i = -1.0, t // 2
    for i in range(max(3, t // 10), t - max(3, t // 10)):
        mean_b = cums[i - 1] / i
        var_b = np.maximum(cums2[i - 1] / i - mean_b**2, 0)
        mean_a = (cums[-1] - cums[i - 1]) / (t - i)
        score = float(
            np.sum(np.abs(mean_a - mean_b) / (np.sqrt(var_b) + 1e-3 + 0.05 * np.abs(mean_b)))
        )
        if score > best:
            best, best_i = score, i
    return float(times[best_i])


def rank_root_causes(
    metrics: pd.DataFrame,
    graph: GraphLike = None,
    anomaly_start: Any = None,
    *,
    model: RcaGNN | None = None,
) -> list[tuple[str, float]]:
    """Rank every node and link as the root cause of the anomaly in ``metrics``.

    Args:
        metrics: rows = time (numeric seconds or a DatetimeIndex), columns =
            ``"<entity>:<metric>"`` (``"n7:cpu"``, ``"n7-n9:loss"``); NaN = missing.
        graph: a Topology, an edge list of ``(a, b)`` node pairs, or None
            (then an entity ``a-b`` is the link between nodes ``a`` and ``b``).
        anomaly_start: when the anomaly began, on the index's axis; None
            estimates it (see :func:`estimate_anomaly_start`).
        model: a trained :class:`RcaGNN`; None uses the shipped default.

    Returns:
        ``(entity, score)`` pairs, most likely root cause first; the score is
        the model's anomaly probability of that entity.
    """
    return [
        (r.entity, r.score)
        for r in Analyzer(model or default_model()).rank(metrics, graph, anomaly_start)
    ]


@dataclass(frozen=True)
class Ranked:
    """One entity's verdict: type (node/link), anomaly score, root logit, likeliest fault."""

    entity: str
    entity_type: str
    score: float
    logit: float
    fault: str
    fault_p: float


class Analyzer:
    """Ranks, flags and explains with one model.

    Args:
        model: the trained model.
        version: the model's registry version, reported with results.
        threshold: anomaly score above which an entity counts as anomalous.
        explain_steps: integrated-gradients steps per explanation.
    """

    def __init__(
        self,
        model: RcaGNN,
        version: str = "default",
        threshold: float = 0.5,
        explain_steps: int = 32,
    ) -> None:
        self.model, self.version, self.threshold, self.explain_steps = (
            model,
            version,
            threshold,
            explain_steps,
        )

    def graph_of(
        self, metrics: pd.DataFrame, graph: GraphLike, anomaly_start: Any
    ) -> tuple[CaseGraph, float]:
        times, columns, values, start = frame_arrays(metrics, anomaly_start)
        if start is None:
            start = estimate_anomaly_start(times, values)
        return featurize(times, columns, values, start, graph), start

    def rank_graph(self, graph: CaseGraph) -> list[Ranked]:
        full = full_logits(self.model, graph)
        out = full[:, 0]
        faults, fault_p = fault_kinds(full, graph.is_link)
        order = np.argsort(-out, kind="stable")
        scores = 1 / (1 + np.exp(-out))
        return [
            Ranked(
                graph.entities[i],
                "link" if graph.is_link[i] else "node",
                float(scores[i]),
                float(out[i]),
                faults[i],
                float(fault_p[i]),
            )
            for i in order
        ]

    def rank(
        self, metrics: pd.DataFrame, graph: GraphLike = None, anomaly_start: Any = None
    ) -> list[Ranked]:
        return self.rank_graph(self.graph_of(metrics, graph, anomaly_start)[0])

    def analyze_graph(
        self, graph: CaseGraph, start: float, top: int = 3, with_explanations: bool = True
    ) -> dict[str, Any]:
        """Plain-dict result: top root causes with explanations, anomalous entities.

        Each root cause: ``entity``, ``entity_type`` (node/link), ``kind`` (the
        likeliest fault kind, e.g. ``link-loss``), ``kind_confidence``,
        ``score`` (anomaly probability) and ``explanation``.
        """
        ranked = self.rank_graph(graph)
        causes = []
        for r in ranked[:top]:
            row: dict[str, Any] = {
                "entity": r.entity,
                "entity_type": r.entity_type,
                "kind": r.fault,
                "kind_confidence": round(r.fault_p, 4),
                "score": round(r.score, 4),
            }
            if with_explanations:
                row["explanation"] = explain(
                    self.model, graph, graph.entities.index(r.entity), r.score, self.explain_steps
                ).to_dict()
            causes.append(row)
        return {
            "model_version": self.version,
            "anomaly_start": start,
            "anomalous": [r.entity for r in ranked if r.score >= self.threshold],
            "root_causes": causes,
        }

    def analyze(
        self,
        metrics: pd.DataFrame,
        graph: GraphLike = None,
        anomaly_start: Any = None,
        top: int = 3,
        with_explanations: bool = True,
    ) -> dict[str, Any]:
        case_graph, start = self.graph_of(metrics, graph, anomaly_start)
        return self.analyze_graph(case_graph, start, top, with_explanations)
