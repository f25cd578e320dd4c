"""The values that flow through the MAPE-K loop: symptoms, diagnoses, actions, outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "Action",
    "ActionKind",
    "Candidate",
    "Clock",
    "Diagnosis",
    "DiagnosisKind",
    "MeshView",
    "Outcome",
    "Symptom",
    "link_ends",
]

Clock = Callable[[], float]
"""Wall-clock seconds (``time.time`` in production, a fake in tests)."""


@dataclass(frozen=True)
class Symptom:
    """One entity's metric left its adaptive baseline in the last window.

    ``score`` is the robust z-score ``(value - baseline) / scale`` signed so that
    positive is worse; a ``silent`` symptom (metric ``"silent"``) means the
    entity stopped reporting and ``value`` is the seconds since its last sample.
    """

    ts: float
    kind: str
    """Entity kind: ``link``, ``node`` (or a telemetry kind like ``iface``)."""
    entity: str
    metric: str
    value: float
    baseline: float
    scale: float
    score: float

    def describe(self) -> str:
        if self.metric == "silent":
            return f"{self.entity} silent for {self.value:.1f} s"
        return (
            f"{self.entity} {self.metric}={self.value:.3g} "
            f"(baseline {self.baseline:.3g} ± {self.scale:.2g}, z={self.score:+.1f})"
        )


class DiagnosisKind(StrEnum):
    LINK_DOWN = "link-down"
    LINK_DEGRADED = "link-degraded"
    NODE_DOWN = "node-down"
    NODE_DEGRADED = "node-degraded"
    BYZANTINE = "byzantine"

    def milder_than(self, other: str) -> bool:
        """Whether this is the same element's milder state (down -> degraded): what a
        node or link shows while it recovers, e.g. reconverging after a restart."""
        return (other, self.value) in {
            ("node-down", "node-degraded"),
            ("link-down", "link-degraded"),
        }


@dataclass(frozen=True)
class Diagnosis:
    """A root cause the Analyze phase settled on, with the evidence behind it."""

    kind: DiagnosisKind
    root_cause: str
    """A link key (``n3-n4``) or a node name."""
    confidence: float
    explanation: str
    symptoms: tuple[Symptom, ...] = ()
    source: str = "statistical"
    """``statistical`` or ``trainer:<model version>``."""

    @property
    def key(self) -> str:
        """Identifies the incident: one per root cause at a time (its kind may change,
        e.g. a node first degraded, then down)."""
        return self.root_cause

    @property
    def on_node(self) -> bool:
        return self.kind in (
            DiagnosisKind.NODE_DOWN,
            DiagnosisKind.NODE_DEGRADED,
            DiagnosisKind.BYZANTINE,
        )


class ActionKind(StrEnum):
    DO_NOTHING = "do-nothing"
    RAISE_COST = "raise-cost"
    ROUTE_AROUND_LINK = "route-around-link"
    ISOLATE_NODE = "isolate-node"
    """Route around a node: no node uses it as transit or keeps a link to it."""
    RESTART_NODE = "restart-node"


@dataclass(frozen=True)
class Action:
    """A remedy.  Applying it twice has the effect of applying it once."""

    kind: ActionKind
    target: str = ""
    """A link key or node name (empty for ``do-nothing``)."""
    factor: float = 1.0
    """For ``raise-cost``: the multiplier of the link's configured cost."""

    @property
    def key(self) -> str:
        suffix = f"x{self.factor:g}" if self.kind is ActionKind.RAISE_COST else ""
        return f"{self.kind}:{self.target}{suffix}"

    def describe(self) -> str:
        if self.kind is ActionKind.DO_NOTHING:
            return "do nothing"
        if self.kind is ActionKind.RAISE_COST:
            return f"raise cost of {self.target} x{self.factor:g}"
        return f"{self.kind.value.replace('-', ' ')} {self.target}"


@dataclass(frozen=True)
class Candidate:
    """An action with its twin prediction and the score it got."""

    action: Action
    score: float
    benefit: float
    """Fraction of all routes the action turns from broken or impaired into healthy."""
    disruption: float
    """Fraction of all routes whose path it moves."""
    effectiveness: float
    """Measured success rate of this action for this kind of diagnosis (prior 0.5)."""
    prediction: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a check found after an action ran."""

    success: bool
    detail: str
    checked_at: float
    observed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)


@dataclass(frozen=True)
class MeshView:
    """The live state as the Monitor sees it: what is down, what is degraded."""

    down_links: frozenset[str] = frozenset()
    down_nodes: frozenset[str] = frozenset()
    degraded_links: frozenset[str] = frozenset()
    degraded_nodes: frozenset[str] = frozenset()


def link_ends(key: str, nodes: Collection[str]) -> tuple[str, str] | None:
    """The two node names of a link key like ``n3-n4`` (names may contain dashes)."""
    dash = key.find("-")
    while dash > 0:
        a, b = key[:dash], key[dash + 1 :]
        if a in nodes and b in nodes:
            return a, b
        dash = key.find("-", dash + 1)
    return None
