"""Scoring rankers on held-out cases: the model, the MLP and the standard baselines."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from x0tta6bl4.ml.baselines import baro_scores, pagerank_scores, random_scores
from x0tta6bl4.ml.metrics import detection_metrics, ranking_metrics
from x0tta6bl4.ml.model import RcaGNN
from x0tta6bl4.ml.scenarios.case import Case
from x0tta6bl4.ml.schema import FAULT_ORDER
from x0tta6bl4.ml.train import Sample, fault_kinds, full_logits, logits

__all__ = ["baseline_scorers", "evaluate_scorer", "kind_accuracy", "model_scorer"]

Scorer = Callable[[Case, Sample], npt.NDArray[np.float64]]


def model_scorer(model: RcaGNN) -> Scorer:
    return lambda _case, sample: logits(model, sample.graph)


def baseline_scorers(seed: int = 0) -> dict[str, Scorer]:
    """Random, BARO-style and PageRank scorers (BARO computed once per case for both)."""
    rng = np.random.default_rng(seed)
    cache: dict[int, npt.NDArray[np.float64]] = {}

    def baro(case: Case, sample: Sample) -> npt.NDArray[np.float64]:
        key = id(sample)
        if key not in cache:
            cache[key] = baro_scores(case.times, case.values, sample.start_s, sample.graph)
        return cache[key]

    return {
        "random": lambda _c, s: random_scores(s.graph, rng),
        "baro": baro,
        "pagerank": lambda c, s: pagerank_scores(s.graph, baro(c, s)),
    }


def evaluate_scorer(
    scorer: Scorer,
    cases: Sequence[Case],
    samples: Sequence[Sample],
    threshold_logit: float | None = 0.0,
) -> dict[str, float]:
    """AC@1/AC@3/Avg@5 overall and per kind; with a threshold also anomaly P/R/F1.

    ``threshold_logit`` applies to scores that are logits (the model's); an
    entity whose score exceeds it is flagged anomalous.
    """
    rankings, flagged, truths, kinds = [], [], [], []
    for case, sample in zip(cases, samples, strict=True):
        scores = scorer(case, sample)
        order = np.argsort(-scores, kind="stable")
        rankings.append([sample.graph.entities[i] for i in order])
        if threshold_logit is not None:
            flagged.append(
                {sample.graph.entities[i] for i in np.flatnonzero(scores > threshold_logit)}
            )
        truths.append(sample.graph.entities[sample.target] if sample.target >= 0 else None)
        kinds.append(str(case.label.kind))
    out = ranking_metrics(rankings, truths, kinds)
    if threshold_logit is not None:
        out.update({f"anomaly.{k}": v for k, v in detection_metrics(flagged, truths).items()})
    return out


def kind_accuracy(model: RcaGNN, samples: Sequence[Sample]) -> float:
    """Share of fault cases whose fault kind the model names right at the true location."""
    hits = total = 0
    for sample in samples:
        if sample.target < 0 or sample.kind < 0:
            continue
        names, _ = fault_kinds(full_logits(model, sample.graph), sample.graph.is_link)
        hits += names[sample.target] == str(FAULT_ORDER[sample.kind])
        total += 1
    return hits / total if total else 0.0
