"""Detecting misbehaving nodes: unconfirmed link claims and blackholes.

Two-way confirmation already keeps fake links out of SPF; these helpers name
the liar so it can be isolated (never used as transit) and reported.

* :class:`UnconfirmedTracker`: an origin whose LSA keeps advertising links the
  other ends do not confirm for longer than a grace period (honest floods
  confirm within a few hundred milliseconds) is flagged.
* :class:`BlackholeDetector`: fed end-to-end delivery results per next hop
  (pings, per-route counters), it suspects a next hop that answers hellos but
  loses the traffic for several destinations.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["BlackholeDetector", "MeshEvent", "UnconfirmedTracker"]


@dataclass(frozen=True)
class MeshEvent:
    """Something a supervisor should know: ``node`` saw ``kind`` about ``subject``."""

    ts: float
    """Wall-clock seconds."""
    node: str
    kind: str
    """``unconfirmed_links``, ``cleared``, ``isolated``, ``released``, ``link_down``/``_up``."""
    subject: str
    detail: str = ""


class UnconfirmedTracker:
    """Flags origins whose unconfirmed link claims persist beyond ``grace_s``."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.flagged: dict[str, list[str]] = {}
        self._since: dict[str, float] = {}
        self._claims: dict[str, list[str]] = {}

    def update(
        self, unconfirmed: Mapping[str, Sequence[str]], now: float
    ) -> tuple[list[str], list[str]]:
        """Take the current unconfirmed claims; returns (newly flagged, cleared) origins."""
        cleared = [origin for origin in self.flagged if origin not in unconfirmed]
        for origin in cleared:
            del self.flagged[origin]
        for origin in [o for o in self._since if o not in unconfirmed]:
            del self._since[origin]
        for origin in unconfirmed:
            self._since.setdefault(origin, now)
        self._claims = {origin: sorted(links) for origin, links in unconfirmed.items()}
        return self.check(now), cleared

    def check(self, now: float) -> list[str]:
        """Flag origins unconfirmed for longer than the grace; returns the new ones."""
        new = [
            origin
            for origin, since in self._since.items()
            if origin not in self.flagged and now - since >= self.grace_s
        ]
        for origin in new:
            self.flagged[origin] = self._claims.get(origin, [])
        return new

    @property
    def pending(self) -> bool:
        """Whether some origin is being watched but not flagged yet."""
        return len(self._since) > len(self.flagged)


class BlackholeDetector:
    """Suspects next hops that lose traffic for several destinations.

    Args:
        threshold: delivery ratio below which a (next hop, destination) pair is bad.
        min_samples: results needed per pair before it is judged.
        min_dests: bad destinations a next hop needs to be suspected (one bad
            destination is more likely that destination's own fault).
    """

    def __init__(self, threshold: float = 0.5, min_samples: int = 5, min_dests: int = 2) -> None:
        self.threshold = threshold
        self.min_samples = min_samples
        self.min_dests = min_dests
        self._sent: dict[tuple[str, str], int] = defaultdict(int)
        self._delivered: dict[tuple[str, str], int] = defaultdict(int)

    def record(self, next_hop: str, dest: str, delivered: bool, count: int = 1) -> None:
        self._sent[(next_hop, dest)] += count
        if delivered:
            self._delivered[(next_hop, dest)] += count

    def ratio(self, next_hop: str, dest: str) -> float | None:
        sent = self._sent.get((next_hop, dest), 0)
        return None if sent == 0 else self._delivered.get((next_hop, dest), 0) / sent

    def suspects(self) -> list[str]:
        bad: dict[str, int] = defaultdict(int)
        for (hop, dest), sent in self._sent.items():
            if sent >= self.min_samples and self._delivered[(hop, dest)] / sent < self.threshold:
                bad[hop] += 1
        return sorted(hop for hop, count in bad.items() if count >= self.min_dests)

    def forget(self, next_hop: str) -> None:
        """Drop the history of ``next_hop`` (after it was isolated or repaired)."""
        for key in [k for k in self._sent if k[0] == next_hop]:
            self._sent.pop(key, None)
            self._delivered.pop(key, None)
