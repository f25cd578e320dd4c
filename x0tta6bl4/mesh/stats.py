"""What a mesh node reports: counters, link and node snapshots, per-link telemetry.

Plain data built from :class:`~x0tta6bl4.mesh.node.MeshNodeLogic`'s state; the
MeshNode actor turns counters into Prometheus metrics and ships link batches to
the supervisor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from x0tta6bl4.mesh.linkmon import LinkMonitor, LinkState
from x0tta6bl4.mesh.ports import Route
from x0tta6bl4.mesh.security import REASONS
from x0tta6bl4.mesh.topology import link_key
from x0tta6bl4.telemetry import BatchBuilder, TelemetryBatch

__all__ = [
    "LINK_METRICS",
    "LinkSnapshot",
    "NodeCounters",
    "NodeSnapshot",
    "link_batch",
    "link_snapshots",
]

LINK_METRICS = ("up", "rtt_ms", "loss", "etx", "df", "dr")


@dataclass
class NodeCounters:
    """Monotonic counters of one node (exported as Prometheus counters by the owner)."""

    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    """Dropped datagrams by reason (see :data:`~x0tta6bl4.mesh.security.REASONS`)."""
    duplicates: int = 0
    stale: int = 0
    """Older LSAs that lost a flooding race (not attacks; see ``node.FLOOD_RACE_S``)."""
    lsas_accepted: int = 0
    lsas_originated: int = 0
    spf_runs: int = 0
    route_changes: int = 0
    """Routes installed, replaced or removed through the sink."""
    route_errors: int = 0
    heal_events: int = 0
    """Link failures handled (each repaired at once, with or without alternates)."""
    lfa_repairs: int = 0
    """Destinations switched to a precomputed loop-free alternate."""
    link_downs: int = 0
    link_ups: int = 0
    send_errors: int = 0
    stalled_ticks: int = 0
    """Ticks that judged no link because this node itself had not run for a while."""

    def flat(self) -> dict[str, int]:
        """``{"rejected_forged": 3, "spf_runs": 12, ...}`` for metrics."""
        out = {f"rejected_{reason}": count for reason, count in self.rejected.items()}
        for name, value in vars(self).items():
            if isinstance(value, int):
                out[name] = value
        return out


@dataclass(frozen=True)
class LinkSnapshot:
    neighbor: str
    state: LinkState
    rtt_ms: float | None
    loss: float
    etx: float
    df: float
    dr: float
    hellos_sent: int
    hellos_received: int
    transitions: int
    measured: bool
    """Whether loss, ETX and the ratios are measurements yet (:attr:`LinkMonitor.measured`)."""


@dataclass(frozen=True)
class NodeSnapshot:
    node: str
    ts: float
    """Wall-clock seconds."""
    links: tuple[LinkSnapshot, ...]
    routes: dict[str, Route]
    lsdb_size: int
    flagged: dict[str, list[str]]
    """Nodes this node refuses as transit: unconfirmed links (by claim) or isolated (reason)."""
    counters: dict[str, int]
    overrides: dict[str, float] = field(default_factory=dict)
    """Operator link costs by neighbour (``math.inf``: drained), see ``set_link_cost``."""


def link_snapshots(monitors: Mapping[str, LinkMonitor]) -> tuple[LinkSnapshot, ...]:
    return tuple(
        LinkSnapshot(
            neighbor,
            m.state,
            None if m.rtt_s is None else m.rtt_s * 1e3,
            m.loss,
            m.etx,
            m.df,
            m.dr,
            m.hellos_sent,
            m.hellos_received,
            m.transitions,
            m.measured,
        )
        for neighbor, m in sorted(monitors.items())
    )


def link_batch(node: str, monitors: Mapping[str, LinkMonitor], ts: float) -> TelemetryBatch:
    """One row per link of ``node``, entity ``"<a>-<b>"``, columns :data:`LINK_METRICS`.

    A link not yet measured (:attr:`LinkMonitor.measured`) reports only ``up``: the
    loss 1 and ETX 1e6 of a link starting up are no measurements, and the Supervisor's
    baselines learned them at a cold start (its loss baselines came out so wide that a
    link losing 40 % each way went unnoticed for up to 80 s)."""
    builder = BatchBuilder(f"mesh:{node}", "link", LINK_METRICS)
    for neighbor, m in sorted(monitors.items()):
        rtt_ms = math.nan if m.rtt_s is None else m.rtt_s * 1e3
        quality = (m.loss, m.etx, m.df, m.dr) if m.measured else (math.nan,) * 4
        builder.add(ts, link_key(node, neighbor), (float(m.up), rtt_ms, *quality))
    return builder.build()
