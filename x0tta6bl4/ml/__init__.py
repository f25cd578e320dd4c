"""Anomaly detection and root-cause analysis: twin scenarios, GraphSAGE, explanations.

The generic entry point is :func:`rank_root_causes`; the Trainer actor serves
:class:`~x0tta6bl4.ml.service.RcaService`.  See ``docs/ml.md``.
"""

from __future__ import annotations

from x0tta6bl4.ml.rank import Analyzer, estimate_anomaly_start, rank_root_causes
from x0tta6bl4.ml.schema import FaultKind

__all__ = ["Analyzer", "FaultKind", "estimate_anomaly_start", "rank_root_causes"]
