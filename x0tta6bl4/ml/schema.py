"""Names shared by scenarios, features and models: fault kinds and metric columns.

A metrics table has one column per ``"<entity>:<metric>"``; an entity is a
mesh node (``n7``) or a link (``n7-n9``, the :class:`~x0tta6bl4.mesh.topology.Link`
key).  The metrics below are the ones the mesh and the eBPF agents collect;
other metrics may appear in data made elsewhere and still count through the
metric-agnostic summary features (see ``docs/ml.md``).
"""

from __future__ import annotations

from enum import StrEnum

from x0tta6bl4.errors import MLError

__all__ = [
    "FAULT_ORDER",
    "LINK_FAULTS",
    "LINK_METRICS",
    "METRIC_FLOOR",
    "NODE_FAULTS",
    "NODE_METRICS",
    "FaultKind",
    "column",
    "split_column",
]


class FaultKind(StrEnum):
    """What went wrong in a case; ``none`` marks a case with normal fluctuations only."""

    LINK_LOSS = "link-loss"
    LINK_DELAY = "link-delay"
    NODE_CRASH = "node-crash"
    NODE_OVERLOAD = "node-overload"
    CONGESTION = "congestion"
    BLACKHOLE = "blackhole"
    NONE = "none"


NODE_FAULTS = frozenset({FaultKind.NODE_CRASH, FaultKind.NODE_OVERLOAD, FaultKind.BLACKHOLE})
"""Fault kinds whose location is a node; the others (but ``none``) sit on a link."""
LINK_FAULTS = frozenset({FaultKind.LINK_LOSS, FaultKind.LINK_DELAY, FaultKind.CONGESTION})
FAULT_ORDER: tuple[FaultKind, ...] = (
    FaultKind.LINK_LOSS,
    FaultKind.LINK_DELAY,
    FaultKind.CONGESTION,
    FaultKind.NODE_CRASH,
    FaultKind.NODE_OVERLOAD,
    FaultKind.BLACKHOLE,
)
"""The model's fault-kind outputs, in order (link kinds first)."""

NODE_METRICS: tuple[str, ...] = (
    "cpu",  # percent busy
    "queue",  # packets queued on egress, summed over interfaces
    "drop_queue",  # packets/s dropped because a queue overflowed
    "drop_noroute",  # packets/s dropped for lack of a route
    "retrans",  # TCP retransmits/s of flows this node sends
    "fwd_mbps",  # transit traffic forwarded, Mbit/s
    "links_up",  # links to neighbours this node sees up
)
LINK_METRICS: tuple[str, ...] = (
    "rtt_ms",  # probe round-trip time
    "loss",  # probe loss fraction, 0..1
    "mbps",  # traffic carried, both directions, Mbit/s
)

METRIC_FLOOR: dict[str, float] = {
    "cpu": 2.0,
    "queue": 2.0,
    "drop_queue": 1.0,
    "drop_noroute": 1.0,
    "retrans": 1.0,
    "fwd_mbps": 2.0,
    "links_up": 0.5,
    "rtt_ms": 0.5,
    "loss": 0.01,
    "mbps": 2.0,
}
"""Smallest change of each metric that counts as real: the floor of its robust scale."""


def column(entity: str, metric: str) -> str:
    return f"{entity}:{metric}"


def split_column(name: str) -> tuple[str, str]:
    """``"n3-n4:rtt_ms"`` -> ``("n3-n4", "rtt_ms")``; the last colon separates."""
    entity, sep, metric = str(name).rpartition(":")
    if not sep or not entity or not metric:
        raise MLError(
            f"metric column {name!r} is not of the form '<entity>:<metric>'",
            fix="name columns like 'n7:cpu' or 'n7-n9:loss'",
        )
    return entity, metric
