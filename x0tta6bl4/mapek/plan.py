"""Plan: candidate actions, each tried in the digital twin before anything is done.

For a diagnosis the planner lists the remedies that fit it and that the mesh
can carry out, asks the twin what each would do (on top of the mirrored live
state, with the diagnosed element marked impaired), and scores

    score = effectiveness * benefit - disruption_weight * disruption

where ``benefit`` is the gain in healthy routes as a share of all routes (a
route over a degraded element counts as half healthy: it still delivers most
packets, so cutting a lossy bridge is worse than keeping it; a route over a
Byzantine node counts as broken),
``disruption`` the share of routes whose path moves, and
``effectiveness`` the success rate Knowledge measured for this action on this
kind of diagnosis (Laplace-smoothed, so an untried action starts at 0.5).
Doing nothing scores 0; the best score wins, ties going to less disruption.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from x0tta6bl4.mapek._types import Action, ActionKind, Candidate, Diagnosis, DiagnosisKind, MeshView
from x0tta6bl4.mesh.node import DRAIN_COST
from x0tta6bl4.mesh.topology import Topology

__all__ = ["Plan", "Planner", "Scenario", "TwinPort"]

Scenario = dict[str, Any]
"""Keyword arguments of :meth:`x0tta6bl4.twin.DigitalTwin.what_if`."""


class TwinPort(Protocol):
    """The digital twin as the planner reaches it (in a worker, or another actor)."""

    async def mirror(self, view: MeshView, costs: Mapping[str, float]) -> None:
        """Mirror the live state: down links and nodes, link costs changed by actions."""
        ...

    async def evaluate(self, scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
        """``WhatIfResult.to_dict(limit=...)`` of each scenario, in order."""
        ...


@dataclass(frozen=True)
class Plan:
    """The chosen candidate and every one that was considered."""

    diagnosis: Diagnosis
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)


class Planner:
    """Builds and scores candidates (see the module doc).

    Args:
        twin: where scenarios are evaluated.
        supports: the action kinds the mesh can carry out.
        topology: the mesh as built (link costs: raise-cost multiplies them).
        cost_factor: the multiplier of a raise-cost action.
        disruption_weight: how much a moved route counts against a restored one.
        impaired_weight: how much of a route a route over a degraded element is worth lost.
    """

    def __init__(
        self,
        twin: TwinPort,
        supports: frozenset[ActionKind],
        topology: Topology,
        *,
        cost_factor: float = 10.0,
        disruption_weight: float = 0.1,
        impaired_weight: float = 0.5,
    ) -> None:
        self.twin = twin
        self.supports = supports | {ActionKind.DO_NOTHING}
        self.topology = topology
        self.base_costs = {link.key: link.cost for link in topology.links}
        self.cost_factor = cost_factor
        self.disruption_weight = disruption_weight
        self.impaired_weight = impaired_weight

    def candidates(self, diagnosis: Diagnosis, view: MeshView) -> list[tuple[Action, Scenario]]:
        """The remedies that fit the diagnosis, each with its twin scenario."""
        target = diagnosis.root_cause
        impaired: Scenario = (
            {"impaired_nodes": [target]} if diagnosis.on_node else {"impaired_links": [target]}
        )
        options: list[tuple[Action, Scenario]] = [(Action(ActionKind.DO_NOTHING), dict(impaired))]
        kind = diagnosis.kind
        on_link = kind in (DiagnosisKind.LINK_DEGRADED, DiagnosisKind.LINK_DOWN)
        if kind is DiagnosisKind.LINK_DEGRADED and target in view.down_links:
            # Flapping: down this window, back the next.  Judge every option with it up.
            impaired["restore_links"] = [target]
            options = [(Action(ActionKind.DO_NOTHING), dict(impaired))]
        if on_link and (kind is DiagnosisKind.LINK_DEGRADED or target not in view.down_links):
            raised = self.base_costs.get(target, 1.0) * self.cost_factor
            options += [
                (
                    Action(ActionKind.RAISE_COST, target, self.cost_factor),
                    {"set_costs": {target: raised}, **impaired},
                ),
                (  # drained, not cut: it still carries what nothing else reaches
                    Action(ActionKind.ROUTE_AROUND_LINK, target),
                    {"set_costs": {target: DRAIN_COST}, **impaired},
                ),
            ]
        elif kind is DiagnosisKind.NODE_DOWN:
            # Doing nothing leaves it down, even where this window's view does not show
            # all of that yet; its links are down because it is: a restart brings them back.
            if target not in view.down_nodes:
                options = [(Action(ActionKind.DO_NOTHING), {"fail_nodes": [target]})]
            links = [link.key for link in self.topology.links if target in link.ends]
            restore: Scenario = {
                "restore_nodes": [target] if target in view.down_nodes else [],
                "restore_links": [key for key in links if key in view.down_links],
            }
            options.append((Action(ActionKind.RESTART_NODE, target), restore))
        elif kind in (DiagnosisKind.NODE_DEGRADED, DiagnosisKind.BYZANTINE):
            if target not in view.down_nodes:
                isolate = {"fail_nodes": [target], **impaired}
                options.append((Action(ActionKind.ISOLATE_NODE, target), isolate))
            if kind is DiagnosisKind.NODE_DEGRADED:
                # A restart clears what the process got wrong; the twin shows the mesh unimpaired.
                options.append((Action(ActionKind.RESTART_NODE, target), {}))
        return [(action, scenario) for action, scenario in options if action.kind in self.supports]

    async def plan(
        self,
        diagnosis: Diagnosis,
        view: MeshView,
        effectiveness: Mapping[tuple[str, str], float],
        exclude: Collection[str] = (),
    ) -> Plan | None:
        """Score every candidate in the twin and pick the best one not in ``exclude``
        (action keys already tried for this incident); None when none is left."""
        options = self.candidates(diagnosis, view)
        predictions = await self.twin.evaluate([scenario for _, scenario in options])
        baseline = predictions[0]
        scored = [
            self._score(action, diagnosis, baseline, prediction, effectiveness)
            for (action, _scenario), prediction in zip(options, predictions, strict=True)
        ]
        allowed = [c for c in scored if c.action.key not in exclude]
        if not allowed:
            return None
        best = max(
            allowed,
            key=lambda c: (
                round(c.score, 9),
                -c.disruption,
                c.action.kind is ActionKind.DO_NOTHING,
            ),
        )
        return Plan(diagnosis, best, scored)

    def _score(
        self,
        action: Action,
        diagnosis: Diagnosis,
        baseline: Mapping[str, Any],
        prediction: Mapping[str, Any],
        effectiveness: Mapping[tuple[str, str], float],
    ) -> Candidate:
        routes = max(1, _routes(baseline))
        w = 1.0 if diagnosis.kind is DiagnosisKind.BYZANTINE else self.impaired_weight
        # What doing nothing leads to (a flapping link comes back) is the reference.
        healthy_now = 2 * baseline["reachable_pairs_after"] - w * baseline["impaired_routes_after"]
        healthy_after = (
            2 * prediction["reachable_pairs_after"] - w * prediction["impaired_routes_after"]
        )
        if action.kind is ActionKind.DO_NOTHING:
            benefit = disruption = 0.0
            rate = 1.0
        else:
            benefit = (healthy_after - healthy_now) / routes
            disruption = 2 * prediction["changed_pairs"] / routes
            rate = effectiveness.get((action.kind.value, diagnosis.kind.value), 0.5)
        score = rate * benefit - self.disruption_weight * disruption
        return Candidate(action, score, benefit, disruption, rate, dict(prediction))


def _routes(result: Mapping[str, Any]) -> int:
    """Ordered node pairs of the whole mesh (from the number of nodes it reports)."""
    nodes = int(result.get("nodes", 0))
    return nodes * (nodes - 1)
