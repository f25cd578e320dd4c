"""Execute: carry out the chosen action, then check that it did what the twin said.

An action is recorded in Knowledge as ``planned`` before it runs and
``executed`` (or ``failed``) after, so a Supervisor restarted in between
finds it and runs it again; that is safe because every action is idempotent.
``verify_after_s`` later the outcome is checked against the mesh itself:

* reachability: every sampled pair the twin predicted reachable is reachable
  along the installed routes;
* the cause is dealt with: a degraded link or node no longer carries sampled
  routes (raise-cost, route-around, isolate), a restarted node reports again,
  and for ``do-nothing`` the symptoms went away on their own.

A check that fails is retried until ``heal_timeout_s`` has passed; then the
outcome is recorded as ineffective and the incident goes back to Plan.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.mapek._types import (
    Action,
    ActionKind,
    Clock,
    DiagnosisKind,
    Outcome,
    Symptom,
    link_ends,
)
from x0tta6bl4.mapek.knowledge import AsyncKnowledge
from x0tta6bl4.mapek.monitor import MonitorReport
from x0tta6bl4.mapek.ports import MeshPort, PathObservation

__all__ = ["Executor", "InFlight"]

log = loggers.supervisor


@dataclass
class InFlight:
    """An executed action waiting for its outcome check."""

    action_id: int
    incident_id: int
    action: Action
    diagnosis_kind: DiagnosisKind
    root_cause: str
    prediction: dict[str, Any]
    executed_at: float
    checks: int = 0
    last: Outcome | None = field(default=None, repr=False)


class Executor:
    """Runs actions through a :class:`MeshPort` and checks their outcomes.

    Args:
        port: the mesh.
        knowledge: where actions and outcomes are recorded.
        clock: wall-clock seconds.
        nodes: the mesh's node names (pairs are sampled among them).
        verify_after_s: wait this long after an action before the first check.
        heal_timeout_s: give up on an action after this long.
        sample_pairs: random pairs observed per check (plus the predicted-lost ones).
    """

    def __init__(
        self,
        port: MeshPort,
        knowledge: AsyncKnowledge,
        clock: Clock,
        nodes: list[str],
        *,
        verify_after_s: float = 2.0,
        heal_timeout_s: float = 30.0,
        sample_pairs: int = 64,
        seed: int = 0,
    ) -> None:
        self.port = port
        self.knowledge = knowledge
        self.clock = clock
        self.nodes = nodes
        self._names = frozenset(nodes)
        self.verify_after_s = verify_after_s
        self.heal_timeout_s = heal_timeout_s
        self.sample_pairs = sample_pairs
        self._rng = random.Random(seed)

    async def execute(self, flight: InFlight) -> bool:
        """Apply the action (idempotent) and mark it executed; False if it raised."""
        error = None
        if flight.action.kind is not ActionKind.DO_NOTHING:
            try:
                await self.port.apply(flight.action)
            except Exception as exc:
                log.exception(
                    "action_failed", action=flight.action.key, incident=flight.incident_id
                )
                error = f"{type(exc).__name__}: {exc}"
        now = self.clock()
        flight.executed_at = now
        await self.knowledge.call(lambda k: k.mark_executed(flight.action_id, now, error))
        log.info(
            "action_executed",
            action=flight.action.key,
            incident=flight.incident_id,
            error=error,
        )
        return error is None

    def due(self, flight: InFlight) -> bool:
        return self.clock() - flight.executed_at >= self.verify_after_s

    async def check(self, flight: InFlight, report: MonitorReport | None) -> Outcome | None:
        """Observe the mesh; returns the final outcome, or None to check again later."""
        now = self.clock()
        flight.checks += 1
        pairs = self._pairs(flight.prediction)
        observations = await self.port.observe(pairs)
        outcome = self._judge(flight, observations, report, now)
        flight.last = outcome
        if outcome.success or now - flight.executed_at >= self.heal_timeout_s:
            await self.knowledge.call(lambda k: k.record_outcome(flight.action_id, outcome))
            log.info(
                "outcome_checked",
                action=flight.action.key,
                incident=flight.incident_id,
                success=outcome.success,
                detail=outcome.detail,
            )
            return outcome
        return None

    def _pairs(self, prediction: dict[str, Any]) -> list[tuple[str, str]]:
        """The pairs the twin predicted lost, and random ones (all of a small mesh)."""
        picked = {(str(a), str(b)) for a, b in prediction.get("lost_pairs_sample", [])}
        names = self.nodes
        if len(names) * (len(names) - 1) <= self.sample_pairs:
            picked.update((a, b) for a in names for b in names if a != b)
        else:
            for _ in range(self.sample_pairs):
                a, b = self._rng.sample(names, 2)
                picked.add((a, b))
        return sorted(picked)

    def _lingering(self, target: str, report: MonitorReport | None) -> list[Symptom]:
        if report is None:
            return []
        return [s for s in report.symptoms if _touches(s.entity, target, self._names)]

    def _judge(
        self,
        flight: InFlight,
        observed: list[PathObservation],
        report: MonitorReport | None,
        now: float,
    ) -> Outcome:
        component = flight.prediction.get("components")
        index = {name: i for i, name in enumerate(self.nodes)}
        mismatches = []
        for obs in observed:
            if component is None:
                break
            ca, cb = component[index[obs.src]], component[index[obs.dst]]
            if ca >= 0 and ca == cb and not obs.reachable:
                mismatches.append(f"{obs.src}->{obs.dst}")
        target, kind = flight.root_cause, flight.action.kind
        crossing = [o for o in observed if o.reachable and _crosses(o.path, target)]
        problems = []
        if mismatches:
            problems.append(
                f"{len(mismatches)} pairs the twin keeps connected are not "
                f"({', '.join(mismatches[:3])})"
            )
        if kind in (ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK, ActionKind.ISOLATE_NODE):
            transit = [o for o in crossing if target not in (o.src, o.dst)]
            if transit:
                problems.append(f"{len(transit)} sampled routes still cross {target}")
        lingering = self._lingering(target, report)
        if kind is ActionKind.RESTART_NODE and any(s.metric == "silent" for s in lingering):
            problems.append(f"{target} still silent")
        if kind is ActionKind.DO_NOTHING and lingering:
            problems.append(f"{target} still shows {len(lingering)} symptoms")
        observed_summary = {
            "pairs": len(observed),
            "reachable": sum(o.reachable for o in observed),
            "mismatches": mismatches[:20],
            "crossing": len(crossing),
        }
        if problems:
            return Outcome(False, "; ".join(problems), now, observed_summary)
        return Outcome(
            True,
            f"{observed_summary['reachable']}/{len(observed)} sampled pairs reachable as predicted",
            now,
            observed_summary,
        )


def _touches(entity: str, target: str, nodes: Collection[str]) -> bool:
    """Whether a symptom's entity is the target or, for a node target, one of its links."""
    if entity == target:
        return True
    ends = link_ends(entity, nodes)
    return ends is not None and target in ends


def _crosses(path: tuple[str, ...], element: str) -> bool:
    """Whether a hop path uses a node or a link (``a-b``) named ``element``."""
    if element in path:
        return True
    return any(element in (f"{a}-{b}", f"{b}-{a}") for a, b in itertools.pairwise(path))
