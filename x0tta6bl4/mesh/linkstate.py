"""The link-state database: newest authentic LSA per origin, aging, two-way graph.

An LSA replaces the stored one of its origin only when its sequence number is
higher; an equal one is a harmless flooding duplicate, a lower one a stale or
replayed copy.  Entries not refreshed within ``max_age_s`` (local monotonic
time, so no clock agreement is needed) are purged.

:meth:`Lsdb.graph` keeps a link only when both ends advertise it (two-way
confirmation) and costs it at the larger of the two advertised costs, floored
at 1.0: a node cannot invent links to nodes that do not confirm them, nor make
a real link look cheaper than its honest end says.  Links advertised without
confirmation are reported per origin so the node can flag the advertiser.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from x0tta6bl4.mesh.spf import Graph
from x0tta6bl4.mesh.wire import Lsa

__all__ = ["Change", "Lsdb", "LsdbEntry", "Verdict", "link_cost"]

MIN_COST = 1.0
"""ETX is at least 1; lower advertised costs are raised to this."""


class Verdict(StrEnum):
    NEWER = "newer"
    DUPLICATE = "duplicate"
    STALE = "stale"


class Change(StrEnum):
    """What storing an LSA did to the graph: nothing, only good news, or bad news (a
    link gone or dearer), which may strand traffic and so deserves an SPF at once."""

    NONE = "none"
    BETTER = "better"
    WORSE = "worse"

    def __bool__(self) -> bool:
        return self is not Change.NONE


@dataclass
class LsdbEntry:
    lsa: Lsa
    raw: bytes
    """The datagram exactly as received (signatures included), for re-flooding."""
    received_at: float
    links: dict[str, float] = field(default_factory=dict)


def link_cost(a_cost: float, b_cost: float) -> float:
    """The cost of a confirmed link from both ends' claims."""
    return max(a_cost, b_cost, MIN_COST)


class Lsdb:
    """Newest LSA per origin, as seen by node ``owner``."""

    def __init__(self, owner: str, max_age_s: float) -> None:
        self.owner = owner
        self.max_age_s = max_age_s
        self._entries: dict[str, LsdbEntry] = {}
        self._next_expiry = -math.inf
        # The confirmed graph, kept up to date on every change (SPF then starts at once).
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._adj: list[dict[int, float]] = []
        self._unconfirmed: dict[str, set[str]] = {}

    def verdict(self, lsa: Lsa) -> Verdict:
        current = self._entries.get(lsa.origin)
        if current is None or lsa.seq > current.lsa.seq:
            return Verdict.NEWER
        return Verdict.DUPLICATE if lsa.seq == current.lsa.seq else Verdict.STALE

    def install(self, lsa: Lsa, raw: bytes, now: float) -> Change:
        """Store ``lsa`` when newer; says how the stored links changed (falsy: not at all)."""
        if self.verdict(lsa) != Verdict.NEWER:
            return Change.NONE
        links: dict[str, float] = {}
        for neighbor, cost in lsa.links:
            if neighbor != lsa.origin:
                links[neighbor] = cost
        old = self._entries.get(lsa.origin)
        self._entries[lsa.origin] = LsdbEntry(lsa, raw, now, links)
        self._next_expiry = min(self._next_expiry, now + self.max_age_s)
        if old is None:
            for neighbor in links:
                self._relink(lsa.origin, neighbor)
            return Change.BETTER
        if old.links == links:
            return Change.NONE
        for neighbor in old.links.keys() | links.keys():
            self._relink(lsa.origin, neighbor)
        worse = any(n not in links or links[n] > cost for n, cost in old.links.items())
        return Change.WORSE if worse else Change.BETTER

    def get(self, origin: str) -> LsdbEntry | None:
        return self._entries.get(origin)

    def seq(self, origin: str) -> int:
        entry = self._entries.get(origin)
        return entry.lsa.seq if entry else 0

    def age(self, now: float) -> list[str]:
        """Purge entries older than ``max_age_s`` (never the owner's); returns their origins.

        Cheap when nothing is due: the next deadline is the oldest entry's, and storing
        an LSA only ever adds later ones."""
        if now <= self._next_expiry:
            return []
        dead = []
        oldest = math.inf
        for origin, entry in self._entries.items():
            if origin == self.owner:
                continue
            if now - entry.received_at > self.max_age_s:
                dead.append(origin)
            else:
                oldest = min(oldest, entry.received_at)
        for origin in dead:
            entry = self._entries.pop(origin)
            for neighbor in entry.links:
                self._relink(origin, neighbor)
        self._next_expiry = oldest + self.max_age_s
        return dead

    def __iter__(self) -> Iterator[LsdbEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, origin: object) -> bool:
        return origin in self._entries

    def graph(self, no_transit: Collection[str] = ()) -> tuple[Graph, dict[str, list[str]]]:
        """The confirmed graph, and per origin the advertised links nobody confirms.

        The graph shares this database's live structures: use it before the next change."""
        blocked = frozenset(self._index[name] for name in no_transit if name in self._index)
        unconfirmed = {origin: sorted(links) for origin, links in self._unconfirmed.items()}
        return Graph(self._names, self._index, self._adj, blocked), unconfirmed

    def _relink(self, a: str, b: str) -> None:
        """Recompute the edge a-b and whether each end's claim of it is confirmed."""
        entry_a, entry_b = self._entries.get(a), self._entries.get(b)
        claim_a = entry_a.links.get(b) if entry_a is not None else None
        claim_b = entry_b.links.get(a) if entry_b is not None else None
        if claim_a is not None and claim_b is not None:
            i, j = self._slot(a), self._slot(b)
            self._adj[i][j] = self._adj[j][i] = link_cost(claim_a, claim_b)
        elif a in self._index and b in self._index:
            # Only names with a confirmed link get a slot: claims cannot grow the graph.
            i, j = self._index[a], self._index[b]
            self._adj[i].pop(j, None)
            self._adj[j].pop(i, None)
        self._mark(a, b, claim_a is not None and claim_b is None)
        self._mark(b, a, claim_b is not None and claim_a is None)

    def _slot(self, name: str) -> int:
        index = self._index.get(name)
        if index is None:
            index = self._index[name] = len(self._names)
            self._names.append(name)
            self._adj.append({})
        return index

    def _mark(self, origin: str, neighbor: str, unconfirmed: bool) -> None:
        if unconfirmed:
            self._unconfirmed.setdefault(origin, set()).add(neighbor)
        elif origin in self._unconfirmed:
            claims = self._unconfirmed[origin]
            claims.discard(neighbor)
            if not claims:
                del self._unconfirmed[origin]
