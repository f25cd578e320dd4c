"""The MAPE-K loop: Monitor, Analyze, Plan, Execute (and check), over shared Knowledge.

Contract:

* :meth:`MapekLoop.tick` never raises.  Each phase runs in its own
  ``try/except``; a phase that fails is logged with the tick number and what
  it was working on, and the next phase and the next tick still run.
* Every action is idempotent (raise a cost to a value, drain a link, isolate
  a node, restart a node that should be running).  A failed or interrupted
  call may still have taken effect, so repeating it must be harmless: after
  a restart, actions Knowledge holds as ``planned`` are applied again and
  ``executed`` ones are checked again.
* Nothing here blocks the event loop: SQLite runs on Knowledge's thread, the
  twin in its worker or actor, mesh calls are awaited.  Each phase's duration
  goes to ``on_phase`` (the actor exports them as metrics), and a tick slower
  than ``slow_tick_s`` is logged as a warning.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.mapek._types import (
    ActionKind,
    Clock,
    Diagnosis,
    DiagnosisKind,
    MeshView,
    Outcome,
)
from x0tta6bl4.mapek.analyze import Analyzer
from x0tta6bl4.mapek.execute import Executor, InFlight
from x0tta6bl4.mapek.ingest import WindowAggregator
from x0tta6bl4.mapek.knowledge import AsyncKnowledge, Knowledge, PendingAction
from x0tta6bl4.mapek.monitor import Monitor, MonitorReport
from x0tta6bl4.mapek.plan import Planner, TwinPort
from x0tta6bl4.mapek.ports import MeshPort
from x0tta6bl4.mesh.node import DRAIN_COST

__all__ = ["MapekLoop", "PhaseStats"]

log = loggers.supervisor

PHASES = ("monitor", "analyze", "plan", "execute", "verify", "persist")
_LASTING = frozenset({ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK, ActionKind.ISOLATE_NODE})


@dataclass
class PhaseStats:
    """Durations of one phase (seconds) and how often it failed."""

    runs: int = 0
    failures: int = 0
    last_s: float = 0.0
    max_s: float = 0.0
    total_s: float = 0.0

    def add(self, seconds: float, failed: bool) -> None:
        self.runs += 1
        self.failures += failed
        self.last_s = seconds
        self.max_s = max(self.max_s, seconds)
        self.total_s += seconds


@dataclass
class _Applied:
    """Changes the Supervisor made that the twin must mirror on top of the telemetry."""

    costs: dict[str, float] = field(default_factory=dict)
    """Raised and drained links: link -> cost."""
    isolated: set[str] = field(default_factory=set)

    verified: set[str] = field(default_factory=set)
    """Targets whose change passed its outcome check: their symptoms may linger."""


class MapekLoop:
    """One Supervisor's control loop (see the module doc for its contract).

    Args:
        clock: wall-clock seconds.
        aggregator: where ingested batches are folded in (closed once per tick).
        monitor, analyzer, planner, executor: the phases.
        twin: the digital twin the planner's scenarios run in.
        knowledge: incidents, actions, outcomes, baselines.
        port: the mesh (Byzantine flags come from it).
        max_attempts: actions tried per incident before it is escalated.
        slow_tick_s: a tick slower than this is logged as a warning.
        save_every: baselines are saved every this many ticks.
        on_phase: called with (phase, seconds, failed) after every phase.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        aggregator: WindowAggregator,
        monitor: Monitor,
        analyzer: Analyzer,
        planner: Planner,
        executor: Executor,
        twin: TwinPort,
        knowledge: AsyncKnowledge,
        port: MeshPort,
        max_attempts: int = 3,
        slow_tick_s: float = 1.0,
        save_every: int = 10,
        on_phase: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        self.clock = clock
        self.aggregator = aggregator
        self.monitor = monitor
        self.analyzer = analyzer
        self.planner = planner
        self.executor = executor
        self.twin = twin
        self.knowledge = knowledge
        self.port = port
        self.max_attempts = max_attempts
        self.slow_tick_s = slow_tick_s
        self.save_every = save_every
        self.on_phase = on_phase
        self.ticks = 0
        self.stats = {phase: PhaseStats() for phase in PHASES}
        self.report: MonitorReport | None = None
        self.diagnoses: list[Diagnosis] = []
        self.in_flight: dict[int, InFlight] = {}
        self._fresh: list[InFlight] = []
        self._analyzed = False
        self._applied = _Applied()

    # --- start-up --------------------------------------------------------------------

    async def start(self) -> None:
        """Load baselines and the actions in effect; resume actions left unfinished."""
        records = await self.knowledge.call(lambda k: k.baselines())
        self.monitor.baselines.load(records)
        for action, verified in await self.knowledge.call(lambda k: k.in_effect()):
            self._remember(action.kind, action.target, action.factor)
            if verified:
                self._applied.verified.add(action.target)
        pending: list[PendingAction] = await self.knowledge.call(lambda k: k.pending_actions())
        now = self.clock()
        for p in pending:
            flight = InFlight(
                p.id,
                p.incident_id,
                p.action,
                DiagnosisKind(p.diagnosis_kind),
                p.root_cause,
                p.prediction,
                now,
            )
            if p.state == "planned":
                self._fresh.append(flight)
            else:
                self.in_flight[p.incident_id] = flight
        log.info(
            "mapek_resumed",
            baselines=len(records),
            replay=len(self._fresh),
            rechecks=len(self.in_flight),
        )

    # --- the loop --------------------------------------------------------------------

    async def tick(self) -> dict[str, Any]:
        """Run every phase once; never raises."""
        self.ticks += 1
        started = time.perf_counter()
        for phase, step in (
            ("monitor", self._monitor),
            ("analyze", self._analyze),
            ("plan", self._plan),
            ("execute", self._execute),
            ("verify", self._verify),
            ("persist", self._persist),
        ):
            await self._run(phase, step)
        seconds = time.perf_counter() - started
        if seconds > self.slow_tick_s:
            log.warning(
                "mapek_loop_slow",
                tick=self.ticks,
                seconds=round(seconds, 3),
                phases={p: round(s.last_s, 3) for p, s in self.stats.items()},
            )
        return self.summary()

    async def _run(self, phase: str, step: Callable[[], Awaitable[None]]) -> None:
        started = time.perf_counter()
        failed = False
        try:
            await step()
        except Exception:
            failed = True
            log.exception(
                "mapek_phase_failed",
                phase=phase,
                tick=self.ticks,
                diagnoses=[d.key for d in self.diagnoses],
                in_flight=sorted(self.in_flight),
            )
        seconds = time.perf_counter() - started
        self.stats[phase].add(seconds, failed)
        if self.on_phase is not None:
            self.on_phase(phase, seconds, failed)

    async def _monitor(self) -> None:
        self.report = None
        self.report = self.monitor.observe(self.aggregator.close(self.clock()))

    async def _analyze(self) -> None:
        self.diagnoses = []
        self._analyzed = False
        if self.report is None:
            return
        flagged = await self.port.flagged()
        if self.report.symptoms or flagged:
            self.diagnoses = await self.analyzer.analyze(self.report, flagged)
        self._analyzed = True

    async def _plan(self) -> None:
        if not self.diagnoses or self.report is None:
            return
        view = self._mirrored(self.report.view)
        await self.twin.mirror(view, self._applied.costs)
        effectiveness = await self.knowledge.call(lambda k: k.effectiveness())
        now = self.clock()
        for diagnosis in self.diagnoses:
            if diagnosis.root_cause in self._applied.verified:
                continue  # mitigated and checked: its symptoms are expected to linger
            opened = await self.knowledge.run(Knowledge.open_incident, diagnosis, now)
            incident = opened.id
            if opened.created:
                log.info(
                    "incident_opened",
                    incident=incident,
                    kind=diagnosis.kind.value,
                    root_cause=diagnosis.root_cause,
                    explanation=diagnosis.explanation,
                    source=diagnosis.source,
                )
            if opened.state == "escalated" or any(f.incident_id == incident for f in self._fresh):
                continue
            flight = self.in_flight.get(incident)
            if flight is not None:
                if opened.previous_kind == diagnosis.kind.value or diagnosis.kind.milder_than(
                    opened.previous_kind
                ):
                    continue  # a recovering element: its action's check decides
                await self._supersede(flight, diagnosis)
            await self._plan_one(incident, diagnosis, view, effectiveness, now)

    async def _plan_one(
        self,
        incident: int,
        diagnosis: Diagnosis,
        view: MeshView,
        effectiveness: Mapping[tuple[str, str], float],
        now: float,
    ) -> None:
        tried = await self.knowledge.call(lambda k: k.tried(incident))
        plan = None
        if len(tried) < self.max_attempts:
            plan = await self.planner.plan(diagnosis, view, effectiveness, exclude=tried)
        if plan is None:
            await self.knowledge.call(lambda k: k.escalate(incident))
            log.warning(
                "incident_escalated", incident=incident, key=diagnosis.key, tried=sorted(tried)
            )
            return
        chosen = plan.chosen
        action_id = await self.knowledge.call(
            lambda k: k.plan_action(incident, diagnosis.kind.value, chosen, now)
        )
        log.info(
            "action_planned",
            incident=incident,
            action=chosen.action.key,
            score=round(chosen.score, 4),
            candidates={c.action.key: round(c.score, 4) for c in plan.candidates},
        )
        self._fresh.append(
            InFlight(
                action_id,
                incident,
                chosen.action,
                diagnosis.kind,
                diagnosis.root_cause,
                chosen.prediction,
                now,
            )
        )

    async def _supersede(self, flight: InFlight, diagnosis: Diagnosis) -> None:
        """The diagnosis changed under an action in flight: record it as overtaken."""
        del self.in_flight[flight.incident_id]
        outcome = Outcome(
            False, f"superseded: the diagnosis became {diagnosis.kind.value}", self.clock()
        )
        await self.knowledge.call(lambda k: k.record_outcome(flight.action_id, outcome))

    async def _execute(self) -> None:
        while self._fresh:
            flight = self._fresh.pop(0)
            if await self.executor.execute(flight):
                self._remember(flight.action.kind, flight.action.target, flight.action.factor)
            self.in_flight[flight.incident_id] = flight

    async def _verify(self) -> None:
        now = self.clock()
        for incident, flight in list(self.in_flight.items()):
            if not self.executor.due(flight):
                continue
            outcome = await self.executor.check(flight, self.report)
            if outcome is None:
                continue
            del self.in_flight[incident]
            if outcome.success:
                if flight.action.kind in _LASTING:
                    self._applied.verified.add(flight.action.target)
                await self.knowledge.run(Knowledge.close_incident, incident, "healed", now)
                log.info("incident_healed", incident=incident, action=flight.action.key)
        if not self._analyzed:
            return  # without this tick's analysis, absent diagnoses prove nothing
        active = {d.key for d in self.diagnoses}
        for row in await self.knowledge.call(lambda k: k.incidents(open_only=True)):
            if row.key not in active and row.id not in self.in_flight:
                await self.knowledge.run(Knowledge.close_incident, row.id, "cleared", now)
                log.info("incident_cleared", incident=row.id, key=row.key)

    async def _persist(self) -> None:
        if self.ticks % self.save_every:
            return
        snapshot = self.monitor.baselines.snapshot()  # array copies; records built off-loop
        now = self.clock()
        await self.knowledge.call(lambda k: k.save_baselines(snapshot.rows(), now))

    # --- helpers ---------------------------------------------------------------------

    def _remember(self, kind: ActionKind, target: str, factor: float) -> None:
        if kind is ActionKind.RAISE_COST:
            self._applied.costs[target] = self.planner.base_costs.get(target, 1.0) * factor
        elif kind is ActionKind.ROUTE_AROUND_LINK:
            self._applied.costs[target] = DRAIN_COST
        elif kind is ActionKind.ISOLATE_NODE:
            self._applied.isolated.add(target)

    def _mirrored(self, view: MeshView) -> MeshView:
        return MeshView(
            down_links=view.down_links,
            down_nodes=view.down_nodes | self._applied.isolated,
            degraded_links=view.degraded_links,
            degraded_nodes=view.degraded_nodes,
        )

    def summary(self) -> dict[str, Any]:
        report = self.report
        return {
            "ticks": self.ticks,
            "symptoms": len(report.symptoms) if report else 0,
            "diagnoses": [d.key for d in self.diagnoses],
            "in_flight": {i: f.action.key for i, f in self.in_flight.items()},
            "window_samples": report.window.samples if report else 0,
            "phases_s": {p: round(s.last_s, 6) for p, s in self.stats.items()},
            "phases_max_s": {p: round(s.max_s, 6) for p, s in self.stats.items()},
            "phase_failures": {p: s.failures for p, s in self.stats.items() if s.failures},
        }
