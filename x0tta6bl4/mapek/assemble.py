"""Wire a MAPE-K loop from the ``supervisor`` settings (the actor, tests and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from x0tta6bl4.config import Settings, SupervisorSettings
from x0tta6bl4.mapek._types import Clock
from x0tta6bl4.mapek.analyze import Analyzer, StatisticalAnalyzer
from x0tta6bl4.mapek.baselines import Baselines
from x0tta6bl4.mapek.execute import Executor
from x0tta6bl4.mapek.ingest import WindowAggregator
from x0tta6bl4.mapek.knowledge import AsyncKnowledge
from x0tta6bl4.mapek.loop import MapekLoop
from x0tta6bl4.mapek.monitor import Monitor
from x0tta6bl4.mapek.plan import Planner, TwinPort
from x0tta6bl4.mapek.ports import MeshPort
from x0tta6bl4.mesh.topology import Topology

__all__ = ["build_loop", "knowledge_path"]


def knowledge_path(settings: Settings) -> Path:
    """Where the Supervisor's SQLite knowledge lives."""
    return settings.supervisor.db_path or settings.data_dir / "supervisor" / "knowledge.sqlite3"


def build_loop(
    topology: Topology,
    settings: SupervisorSettings,
    *,
    clock: Clock,
    port: MeshPort,
    knowledge: AsyncKnowledge,
    twin: TwinPort,
    analyzer: Analyzer | None = None,
    on_phase: Callable[[str, float, bool], None] | None = None,
) -> MapekLoop:
    """A loop over ``topology`` with every phase configured from ``settings``."""
    s = settings
    baselines = Baselines(alpha=s.baseline_alpha, warmup=s.warmup_windows, freeze_z=s.z_threshold)
    return MapekLoop(
        clock=clock,
        aggregator=WindowAggregator(clock()),
        monitor=Monitor(clock, baselines, z_threshold=s.z_threshold, stale_after_s=s.stale_after_s),
        analyzer=analyzer or StatisticalAnalyzer(topology, s.z_threshold),
        planner=Planner(
            twin,
            port.supports,
            topology,
            cost_factor=s.cost_factor,
            disruption_weight=s.disruption_weight,
        ),
        executor=Executor(
            port,
            knowledge,
            clock,
            topology.names,
            verify_after_s=s.verify_after_s,
            heal_timeout_s=s.heal_timeout_s,
        ),
        twin=twin,
        knowledge=knowledge,
        port=port,
        max_attempts=s.max_attempts,
        slow_tick_s=s.slow_tick_s,
        save_every=max(1, round(s.baseline_save_s / s.interval_s)),
        on_phase=on_phase,
    )
