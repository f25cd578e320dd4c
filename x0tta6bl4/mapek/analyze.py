"""Analyze: from symptoms to root causes.

:class:`Analyzer` is the interface the loop calls.  :class:`StatisticalAnalyzer`
localises with the topology: a silent node is down, a node most of whose links
misbehave is the cause rather than each link, a node other nodes flag for
unconfirmed link claims is Byzantine.  :class:`TrainerAnalyzer` sends the
recent metrics table to the Trainer actor's GraphSAGE model and maps its root
causes and explanations; it falls back to the statistical one when the
Trainer is unreachable or finds nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

import pandas as pd

from x0tta6bl4 import loggers
from x0tta6bl4.mapek._types import Diagnosis, DiagnosisKind, Symptom, link_ends
from x0tta6bl4.mapek.monitor import MonitorReport
from x0tta6bl4.mesh.topology import Topology

__all__ = ["Analyzer", "StatisticalAnalyzer", "TrainerAnalyzer", "TrainerInfer"]

log = loggers.supervisor

TrainerInfer = Callable[
    [pd.DataFrame, list[tuple[str, str]], float | None], Awaitable[Mapping[str, Any] | None]
]
"""``await infer(metrics, edges, anomaly_start)``: the Trainer actor's ``infer`` call;
None when no Trainer runs (statistics answer then)."""

_ML_KINDS: Mapping[str, DiagnosisKind] = {
    "link-loss": DiagnosisKind.LINK_DEGRADED,
    "link-delay": DiagnosisKind.LINK_DEGRADED,
    "congestion": DiagnosisKind.LINK_DEGRADED,
    "node-crash": DiagnosisKind.NODE_DOWN,
    "node-overload": DiagnosisKind.NODE_DEGRADED,
    "blackhole": DiagnosisKind.BYZANTINE,
}
"""The Trainer's fault kinds (``x0tta6bl4.ml.schema.FaultKind``) as diagnoses."""
STANDS_OUT = 3.0
"""A link whose worst z-score is this many times the next-worst one's among its node's
links is a root cause on its own, not a sign that the node is degraded: on a busy host
delayed hellos read as a few percent loss on every link."""
ROUTE_CHURN = frozenset({"links_up", "routes", "route_changes", "heal_events"})
"""Node metrics that a fault on one of the node's links moves as well."""


class Analyzer(Protocol):
    async def analyze(
        self, report: MonitorReport, flagged: Mapping[str, set[str]]
    ) -> list[Diagnosis]:
        """Root causes behind the report's symptoms; ``flagged`` maps a node to the
        nodes that refuse it as transit (Byzantine suspicion)."""
        ...


class StatisticalAnalyzer:
    """Localises symptoms on the topology (see the module doc).

    Args:
        topology: the mesh's nodes and links.
        z_threshold: the Monitor's threshold (confidence is measured against it).
        node_share: share of a node's links that must misbehave to blame the node.
        flag_ticks: analyses in a row a node must be flagged before it counts as
            Byzantine (a mesh still converging flags nodes for a moment).
    """

    name = "statistical"

    def __init__(
        self,
        topology: Topology,
        z_threshold: float = 6.0,
        node_share: float = 0.5,
        flag_ticks: int = 3,
    ) -> None:
        self.topology = topology
        self.z_threshold = z_threshold
        self.node_share = node_share
        self.flag_ticks = flag_ticks
        self._flag_streak: dict[str, int] = {}

    async def analyze(
        self, report: MonitorReport, flagged: Mapping[str, set[str]]
    ) -> list[Diagnosis]:
        return self.diagnose(report.symptoms, flagged, report.view.down_links)

    def diagnose(
        self,
        symptoms: Sequence[Symptom],
        flagged: Mapping[str, set[str]],
        down_links: Collection[str] = frozenset(),
    ) -> list[Diagnosis]:
        """Root causes of one observation (call once per tick: flags must persist).

        ``down_links``: links down for the whole window (the Monitor's view).  A link
        going down is hard evidence even where its ``up`` baseline has not settled
        (it learned while the mesh converged) and so raised no symptom.
        """
        by_entity: dict[str, list[Symptom]] = defaultdict(list)
        for symptom in symptoms:
            by_entity[symptom.entity].append(symptom)
        known = set(self.topology.names)
        silent = {s.entity for s in symptoms if s.metric == "silent" and s.entity in known}
        if len(silent) >= 2 and len(silent) > len(known) / 2:
            # Most of the mesh silent at once: the Supervisor is cut off from the
            # telemetry (or starved itself), which says nothing about any one node.
            log.warning("telemetry_outage", silent=len(silent), nodes=len(known))
            by_entity = {
                key: kept
                for key, evidence in by_entity.items()
                if (kept := [s for s in evidence if s.metric != "silent"])
            }
        out: list[Diagnosis] = []
        for node in sorted(known):
            down = self._node_down(node, by_entity, down_links)
            if down is not None:
                out.append(down)
        blamed = {d.root_cause for d in out}
        self._flag_streak = {
            node: self._flag_streak.get(node, 0) + 1 for node, who in flagged.items() if who
        }
        # A node that is down cannot confirm its links: flags on it are no evidence of lies.
        for node, reporters in sorted(flagged.items()):
            lasting = self._flag_streak.get(node, 0) >= self.flag_ticks
            if node in known and node not in blamed and reporters and lasting:
                out.append(
                    Diagnosis(
                        DiagnosisKind.BYZANTINE,
                        node,
                        min(1.0, 0.5 + 0.1 * len(reporters)),
                        f"{node} is refused as transit by {len(reporters)} node(s) "
                        f"({', '.join(sorted(reporters)[:5])}): its link claims stay unconfirmed",
                        tuple(by_entity.get(node, ())),
                    )
                )
                blamed.add(node)
        for node in sorted(known - blamed):
            degraded = self._node_degraded(node, by_entity)
            if degraded is not None:
                out.append(degraded)
                blamed.add(node)
        for key, evidence in sorted(by_entity.items()):
            ends = link_ends(key, known)
            if ends is None or not self.topology.has_link(*ends) or blamed & set(ends):
                continue
            link_down = any(s.metric == "up" and s.value == 0.0 for s in evidence)
            kind = DiagnosisKind.LINK_DOWN if link_down else DiagnosisKind.LINK_DEGRADED
            out.append(self._node(kind, key, evidence, None, f"link {key} misbehaves"))
        return out

    def _links(self, node: str) -> list[str]:
        return [link.key for link in self.topology.links if node in link.ends]

    def _node_down(
        self, node: str, by_entity: Mapping[str, list[Symptom]], down_links: Collection[str]
    ) -> Diagnosis | None:
        evidence = list(by_entity.get(node, ()))
        silent = [s for s in evidence if s.metric == "silent"]
        if silent:
            summary = f"{node} stopped reporting {silent[0].value:.1f} s ago"
            return self._node(DiagnosisKind.NODE_DOWN, node, evidence, 0.9, summary)
        if any(s.metric == "links_up" and s.value == 0.0 for s in evidence):
            # Its neighbours may not have timed the links out yet; the node knows.
            summary = f"{node} reports none of its links up"
            return self._node(DiagnosisKind.NODE_DOWN, node, evidence, 0.85, summary)
        links = self._links(node)
        down = [
            k
            for k in links
            if k in down_links or any(s.metric == "up" for s in by_entity.get(k, ()))
        ]
        # Something must have changed here this window (a link long down is known).
        changed = evidence or any(k in by_entity for k in links)
        if links and len(down) == len(links) and changed:
            evidence += [s for key in down for s in by_entity.get(key, ())]
            summary = f"every link of {node} went down at once"
            return self._node(DiagnosisKind.NODE_DOWN, node, evidence, 0.8, summary)
        return None

    def _node_degraded(self, node: str, by_entity: Mapping[str, list[Symptom]]) -> Diagnosis | None:
        evidence = list(by_entity.get(node, ()))
        links = self._links(node)
        worst = {key: max(s.score for s in by_entity[key]) for key in links if key in by_entity}
        bad = sorted(worst, key=lambda key: -worst[key])
        # One link far worse than the rest explains the node's route churn and outweighs
        # its other links' wobble: the link is the cause.
        stands_out = len(bad) == 1 or (
            len(bad) >= 2 and worst[bad[0]] >= STANDS_OUT * worst[bad[1]]
        )
        if stands_out and all(s.metric in ROUTE_CHURN for s in evidence):
            return None
        if not stands_out and len(bad) >= 2 and len(bad) >= self.node_share * len(links):
            evidence += [s for key in bad for s in by_entity[key]]
            summary = f"{len(bad)} of {len(links)} links of {node} misbehave"
            return self._node(DiagnosisKind.NODE_DEGRADED, node, evidence, None, summary)
        if evidence:
            summary = f"{node}'s own metrics left their baselines"
            return self._node(DiagnosisKind.NODE_DEGRADED, node, evidence, None, summary)
        return None

    def _node(
        self,
        kind: DiagnosisKind,
        entity: str,
        evidence: list[Symptom],
        confidence: float | None,
        summary: str,
    ) -> Diagnosis:
        ranked = sorted(evidence, key=lambda s: -s.score)
        if confidence is None:
            top = ranked[0].score if ranked else 0.0
            confidence = min(1.0, top / (2 * self.z_threshold))
        detail = "; ".join(s.describe() for s in ranked[:3])
        return Diagnosis(
            kind,
            entity,
            round(confidence, 3),
            f"{summary}: {detail}" if detail else summary,
            tuple(ranked),
        )


class TrainerAnalyzer:
    """Root causes from the Trainer's GraphSAGE model, explained; statistics as fallback.

    Args:
        infer: the Trainer's inference call (see :data:`TrainerInfer`).
        frame: the recent metrics table (the Monitor's history).
        fallback: used when the Trainer fails or names no root cause.
        min_score: root causes scored below this are ignored.
    """

    name = "trainer"

    def __init__(
        self,
        infer: TrainerInfer,
        frame: Callable[[], pd.DataFrame],
        fallback: StatisticalAnalyzer,
        min_score: float = 0.5,
    ) -> None:
        self.infer = infer
        self.frame = frame
        self.fallback = fallback
        self.min_score = min_score

    async def analyze(
        self, report: MonitorReport, flagged: Mapping[str, set[str]]
    ) -> list[Diagnosis]:
        statistical = self.fallback.diagnose(report.symptoms, flagged, report.view.down_links)
        if not report.symptoms:
            return statistical
        # Hard evidence (silence, a link down, flags) needs no model.
        hard = [
            d
            for d in statistical
            if d.kind in (DiagnosisKind.NODE_DOWN, DiagnosisKind.LINK_DOWN, DiagnosisKind.BYZANTINE)
        ]
        frame = self.frame()
        if len(frame) < 8:
            return statistical
        edges = [link.ends for link in self.fallback.topology.links]
        try:
            answer = await self.infer(frame, edges, None)
        except Exception:
            log.exception("trainer_inference_failed", symptoms=len(report.symptoms))
            return statistical
        learned = self._map(answer, report) if answer is not None else []
        if not learned:
            return statistical
        covered = {d.root_cause for d in learned}
        return learned + [d for d in hard if d.root_cause not in covered]

    def _map(self, answer: Mapping[str, Any], report: MonitorReport) -> list[Diagnosis]:
        version = str(answer.get("model_version", "?"))
        out = []
        for cause in answer.get("root_causes", []):
            kind = _ML_KINDS.get(str(cause.get("kind", "")))
            score = float(cause.get("score", 0.0))
            if kind is None or score < self.min_score:
                continue
            entity = str(cause["entity"])
            explanation = cause.get("explanation") or {}
            text = explanation.get("text") if isinstance(explanation, Mapping) else str(explanation)
            out.append(
                Diagnosis(
                    kind,
                    entity,
                    round(score, 3),
                    str(text or f"model {version} ranks {entity} first"),
                    tuple(report.symptoms_of(entity)),
                    source=f"trainer:{version}",
                )
            )
        return out[:1]
