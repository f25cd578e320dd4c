"""The MAPE-K loop of the Supervisor as plain classes (no Ray here).

Telemetry refs queue up in :class:`~x0tta6bl4.mapek.ingest.TelemetryQueue`
and fold into windows (:class:`~x0tta6bl4.mapek.ingest.WindowAggregator`);
:class:`~x0tta6bl4.mapek.loop.MapekLoop` then runs Monitor, Analyze, Plan
(every candidate tried in the digital twin), Execute and the outcome check,
recording everything in :class:`~x0tta6bl4.mapek.knowledge.Knowledge`.
Clock, store, twin and mesh are injected, so all of it runs in a unit test.
"""

from __future__ import annotations

from x0tta6bl4.mapek._types import (
    Action,
    ActionKind,
    Candidate,
    Diagnosis,
    DiagnosisKind,
    MeshView,
    Outcome,
    Symptom,
)
from x0tta6bl4.mapek.analyze import Analyzer, StatisticalAnalyzer, TrainerAnalyzer
from x0tta6bl4.mapek.baselines import Baselines
from x0tta6bl4.mapek.execute import Executor
from x0tta6bl4.mapek.ingest import IngestAck, TelemetryQueue, WindowAggregator
from x0tta6bl4.mapek.knowledge import AsyncKnowledge, Knowledge
from x0tta6bl4.mapek.loop import MapekLoop
from x0tta6bl4.mapek.monitor import Monitor
from x0tta6bl4.mapek.plan import Planner
from x0tta6bl4.mapek.ports import MeshPort, SimMeshPort
from x0tta6bl4.mapek.twin_port import LocalTwin

__all__ = [
    "Action",
    "ActionKind",
    "Analyzer",
    "AsyncKnowledge",
    "Baselines",
    "Candidate",
    "Diagnosis",
    "DiagnosisKind",
    "Executor",
    "IngestAck",
    "Knowledge",
    "LocalTwin",
    "MapekLoop",
    "MeshPort",
    "MeshView",
    "Monitor",
    "Outcome",
    "Planner",
    "SimMeshPort",
    "StatisticalAnalyzer",
    "Symptom",
    "TelemetryQueue",
    "TrainerAnalyzer",
    "WindowAggregator",
]
