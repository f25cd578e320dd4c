"""How RCA is scored: AC@k, Avg@5 and anomaly precision/recall/F1."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

__all__ = ["detection_metrics", "ranking_metrics"]


def _ac(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    hits = sum(1 for ranked, truth in zip(rankings, truths, strict=True) if truth in ranked[:k])
    return hits / len(truths) if truths else 0.0


def ranking_metrics(
    rankings: Sequence[Sequence[str]], truths: Sequence[str | None], kinds: Sequence[str]
) -> dict[str, float]:
    """AC@1, AC@3 and Avg@5 (mean of AC@1..AC@5) overall and per fault kind.

    Cases whose truth is None (no fault) are skipped: they have no root cause.
    Keys: ``ac1``, ``ac3``, ``avg5``, ``<kind>.ac1``, ``<kind>.ac3``, ``<kind>.avg5``.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (truth, kind) in enumerate(zip(truths, kinds, strict=True)):
        if truth is not None:
            groups[""].append(i)
            groups[f"{kind}."].append(i)
    out: dict[str, float] = {}
    for prefix, idx in sorted(groups.items()):
        ranked = [rankings[i] for i in idx]
        wanted = [str(truths[i]) for i in idx]
        out[f"{prefix}ac1"] = _ac(ranked, wanted, 1)
        out[f"{prefix}ac3"] = _ac(ranked, wanted, 3)
        out[f"{prefix}avg5"] = sum(_ac(ranked, wanted, k) for k in range(1, 6)) / 5
    return out


def detection_metrics(
    flagged: Sequence[set[str]], truths: Sequence[str | None]
) -> dict[str, float]:
    """Entity-level anomaly detection over all cases, ``none`` cases included.

    A true positive is a flagged root cause; every other flagged entity is a
    false positive; an unflagged root cause is a false negative.  Also gives
    case-level figures (a case is flagged when any entity is).
    """
    tp = fp = fn = 0
    ctp = cfp = cfn = 0
    for flags, truth in zip(flagged, truths, strict=True):
        hit = truth is not None and truth in flags
        tp += hit
        fp += len(flags) - hit
        fn += truth is not None and not hit
        ctp += truth is not None and bool(flags)
        cfp += truth is None and bool(flags)
        cfn += truth is not None and not flags
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    cprec = ctp / (ctp + cfp) if ctp + cfp else 0.0
    crec = ctp / (ctp + cfn) if ctp + cfn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "case_precision": cprec,
        "case_recall": crec,
        "case_f1": _f1(cprec, crec),
    }


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0
