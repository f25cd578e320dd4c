"""One mesh node's control logic: probing, flooding, SPF, local repair, route install.

:class:`MeshNodeLogic` is plain Python.  Its owner (a Ray actor over real
sockets and netlink, the simulator, or a unit test) calls

* :meth:`~MeshNodeLogic.tick` once per probe interval,
* :meth:`~MeshNodeLogic.receive` for every datagram that arrives on a link
  (polled hellos with their arrival time, right before the tick),
* :meth:`~MeshNodeLogic.link_event` when netlink reports a carrier change,
* :meth:`~MeshNodeLogic.adopt` once at start to keep the routes a previous
  incarnation left in the kernel (non-stop forwarding),

and the logic talks back only through the :class:`~x0tta6bl4.mesh.ports.Transport`
and the :class:`~x0tta6bl4.mesh.ports.RouteSink`.  Every call is quick,
never blocks, and leaves the node consistent when the sink fails (the change
is retried on the next tick).

Local repair: every SPF also precomputes a loop-free alternate per
destination (:mod:`~x0tta6bl4.mesh.spf`).  When a link goes down (``k``
missed hellos in :meth:`tick`, or carrier loss in :meth:`link_event`), the
destinations that used it are switched to their alternates in that same call,
before anything is flooded; the node then re-originates its LSA and runs SPF
at once, which gives destinations without an alternate their new next hop.
Alternates installed by repair stay ``repair_hold_s`` so that neighbours that
have not yet heard of the failure cannot form micro-loops.  With
``mesh.fib_backups`` each route also carries its alternate as ``backup``: the
kernel holds it as a second, dearer route and switches to it by itself when the
primary's link loses carrier, with no write in the path of the repair.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping

from x0tta6bl4 import loggers
from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import ConfigError, MeshError, SecurityError, TopologyError
from x0tta6bl4.mesh.byzantine import MeshEvent, UnconfirmedTracker
from x0tta6bl4.mesh.linkmon import LinkMonitor, LinkParams
from x0tta6bl4.mesh.linkstate import Change, Lsdb, Verdict
from x0tta6bl4.mesh.ports import Clock, Route, RouteSink, Transport
from x0tta6bl4.mesh.security import SecureCodec
from x0tta6bl4.mesh.spf import Entry, Graph, routes_by_claims, routing_table
from x0tta6bl4.mesh.stats import (
    LINK_METRICS,
    LinkSnapshot,
    NodeCounters,
    NodeSnapshot,
    link_batch,
    link_snapshots,
)
from x0tta6bl4.mesh.wire import Hello, Lsa, MsgType, peek
from x0tta6bl4.telemetry import TelemetryBatch

__all__ = ["LINK_METRICS", "LinkSnapshot", "MeshNodeLogic", "NodeCounters", "NodeSnapshot"]

COST_HYSTERESIS = 0.25
"""A link's cost is re-advertised only when it moved by more than this fraction."""
OWN_LSA_REPEATS = 2
"""A changed own LSA is sent again on this many following ticks (floods ride on UDP)."""
FLOOD_RACE_S = 1.0
"""An older LSA at most this much older than the stored one lost a flooding race (counted
as ``stale``); anything older is a replay (counted as rejected ``replayed``)."""
MAX_EVENTS = 1000
GRACEFUL_RESTART_S = 1.0
"""After :meth:`MeshNodeLogic.adopt`, how long at most a node waits for all its links
before it advertises and routes on what it has."""
STALL_INTERVALS = 2.0
"""A tick this many probe intervals after the previous one finds the node itself was not
running: it judges no link by missed hellos (see :meth:`MeshNodeLogic.tick`)."""
BACKUP_SETTLE_S = 1.0
"""Backups follow the table once it has not changed for this long.  Rewriting them with
every SPF while links flap doubled what a flap costs every node in route writes, and a
flap storm that used to die out in seconds went on for minutes; a backup a change left
behind costs little meanwhile (the kernel skips one whose link is down)."""
DRAIN_COST = 1_000_000.0
"""What a drained link (override ``math.inf``) is advertised at: dearer than any real
path, so SPF uses it only when nothing else reaches the destination (and it fits the
wire's integer thousandths)."""


class MeshNodeLogic:
    """The control logic of mesh node ``name``.

    Args:
        name: this node.
        neighbors: nodes at the other end of this node's links.
        clock: monotonic time (probe timers, ages, holds).
        transport: sends datagrams over the direct link to a neighbour.
        routes: where routes go (the kernel, the simulator's tables, a test list).
        codec: seals and opens datagrams (:class:`SecureCodec`; its ``wall``
            gives message timestamps).
        settings: the ``mesh`` section of the settings.
        link_costs: configured cost per neighbour, multiplied by the measured
            ETX (default 1.0).
    """

    def __init__(
        self,
        name: str,
        neighbors: Iterable[str],
        clock: Clock,
        transport: Transport,
        routes: RouteSink,
        codec: SecureCodec,
        settings: MeshSettings,
        *,
        link_costs: Mapping[str, float] | None = None,
    ) -> None:
        _check_timers(settings)
        self.name = name
        self.clock = clock
        self.transport = transport
        self.routes = routes
        self.codec = codec
        self.settings = settings
        self.log = loggers.mesh.bind(node=name)
        self.params = LinkParams(
            probe_interval_s=settings.probe_interval_s,
            miss_threshold=settings.miss_threshold,
            hold_down_probes=settings.hold_down_probes,
            ewma_weight=settings.ewma_weight,
        )
        self.counters = NodeCounters()
        self.events: deque[MeshEvent] = deque(maxlen=MAX_EVENTS)
        self.monitors: dict[str, LinkMonitor] = {}
        self.link_costs: dict[str, float] = {}
        self.overrides: dict[str, float] = {}
        """Operator cost per neighbour (``math.inf``: drained) instead of the measured one."""
        self.lsdb = Lsdb(name, settings.lsa_max_age_s)
        self.tracker = UnconfirmedTracker(settings.byzantine_grace_s)
        self.isolated: dict[str, str] = {}
        self.own_seq = self._wall_seq()
        self.table: dict[str, Entry] = {}
        self.installed: dict[str, Route] = {}
        self._held: dict[str, Route | None] = {}
        """What a destination outside the confirmed graph is held at (None: dropped)."""
        self._advertised: dict[str, float] | None = None
        self._last_origination = -math.inf
        self._repeats = 0
        self._pins: dict[str, float] = {}
        self._stale: dict[str, float] = {}
        self._silent: dict[str, float] = {}
        """Neighbours whose hellos stopped, and since when."""
        self._carrier_lost: set[str] = set()
        self._dirty = False
        self._routes_dirty = False
        self._last_spf = -math.inf
        self._table_changed_at = -math.inf
        self._backups_pending = False
        """Whether the table changed since backups were last brought in line with it."""
        self._quiet_until = -math.inf
        self._adopted = False
        """Whether :meth:`adopt` found routes (a restart, not a cold start)."""
        self._last_tick = clock.now()
        self._skipped = False
        """Whether the previous tick judged no link (see :meth:`tick`)."""
        for neighbor in neighbors:
            self.add_neighbor(neighbor, (link_costs or {}).get(neighbor, 1.0))

    # --- the owner's calls -------------------------------------------------------

    def tick(self) -> None:
        """Once per probe interval: detect silent links, send hellos, age and refresh LSAs,
        run a deferred SPF and expire repair and stale-route holds.

        A tick that comes :data:`STALL_INTERVALS` or more after the previous one judges
        no link silent: this node was not running, and the hellos sent to it meanwhile
        may still sit in the kernel's receive backlog (a CPU saturated by real-time
        threads defers it), so every link would look silent at once.  The next tick
        judges, stalled or not: detection is late by one tick at most, also on a host
        that stays overloaded."""
        now = self.clock.now()
        gap = now - self._last_tick
        stalled = gap >= STALL_INTERVALS * self.params.probe_interval_s and not self._skipped
        self._last_tick, self._skipped = now, stalled
        if stalled:
            self.counters.stalled_ticks += 1
        else:
            for neighbor, monitor in list(self.monitors.items()):
                if monitor.on_tick(now):
                    self._link_down(neighbor, now, "probe")
        for neighbor, monitor in self.monitors.items():
            seq, echo_seq, echo_delay, ratio = monitor.next_hello(now)
            hello = Hello(self.name, seq, self.codec.wall(), neighbor, echo_seq, echo_delay, ratio)
            self._send(neighbor, self.codec.seal(hello))
        if self.lsdb.age(now):
            self._dirty = True
        self._refresh_own(now)
        if self.settings.byzantine and self.tracker.pending:
            flagged = self.tracker.check(now)
            if flagged:
                self._report_flagged(flagged)
                self._spf(now)
        if self._dirty and now - self._last_spf >= self.settings.spf_hold_s:
            self._spf(now)
        elif self._routes_dirty or self._holds() or self._backups_due(now):
            self._reconcile(now)

    def receive(self, neighbor: str, payload: bytes, arrived: float | None = None) -> None:
        """A datagram that arrived on the link to ``neighbor`` (at ``arrived`` on the
        clock, None: now); bad ones are counted, dropped."""
        monitor = self.monitors.get(neighbor)
        if monitor is None:
            self._reject("misdirected", f"datagram on unknown link to {neighbor}")
            return
        head = peek(payload)
        if head is not None and head[0] == MsgType.LSA:
            stored = self.lsdb.get(head[1])
            if stored is not None and stored.raw == payload:
                # The same bytes we already verified: a flooding duplicate, skip the checks.
                self.counters.duplicates += 1
                return
        try:
            message = self.codec.open(payload)
        except SecurityError as exc:
            self._reject(str(exc.context.get("reason", "malformed")), exc.message)
            return
        now = self.clock.now() if arrived is None else arrived
        if isinstance(message, Hello):
            self._hello(neighbor, monitor, message, now)
        else:
            self._lsa(neighbor, message, payload, now)

    def link_event(self, neighbor: str, up: bool) -> None:
        """Carrier change on the link to ``neighbor`` (netlink).  Down repairs at once;
        up only lets hellos bring the link back after the hold-down."""
        monitor = self.monitors.get(neighbor)
        if monitor is None:
            return
        now = self.clock.now()
        if up:
            self._carrier_lost.discard(neighbor)
            return
        self._carrier_lost.add(neighbor)
        if monitor.carrier_down(now):
            self._link_down(neighbor, now, "carrier")
        else:
            self._reconcile(now)

    def adopt(self) -> int:
        """Take over the routes already in the sink (a previous incarnation's) without
        touching them; SPF replaces them as it learns, and the ones it never confirms
        go after ``stale_route_hold_s``.  Returns how many were adopted."""
        now = self.clock.now()
        for dest, route in self.routes.installed().items():
            self.installed[dest] = route
            self._stale.setdefault(dest, now)
        # Until the links are back (or the grace has passed) advertise nothing and keep
        # the adopted routes: a partial LSA would pull traffic off links that still
        # forward fine, and routes computed from the first links up pointed traffic that
        # a neighbour already sent us back at another neighbour still routing through us
        # (a micro-loop; RFC 3623's graceful restart keeps the old table the same way).
        # With nothing adopted (a cold start) only the local links are waited for, and
        # only a few detection times: neighbours starting at the same moment would each
        # wait for the other's confirming LSA until the grace ran out.
        p = self.params
        detect = 2 * (p.hold_down_probes + p.miss_threshold) * p.probe_interval_s
        self._adopted = bool(self.installed)
        self._quiet_until = now + (max(GRACEFUL_RESTART_S, detect) if self._adopted else detect)
        self.log.info("routes adopted", routes=len(self.installed))
        return len(self.installed)

    def isolate(self, node: str, reason: str) -> None:
        """Never route through ``node`` (e.g. a blackhole the supervisor found).

        When ``node`` is a neighbour the link to it is also withdrawn from this
        node's LSA, so the whole mesh stops using it consistently (and, the link
        being left unconfirmed, flags ``node`` after ``byzantine_grace_s``)."""
        if self.isolated.get(node) == reason:
            return
        self.isolated[node] = reason
        self._event("isolated", node, reason)
        now = self.clock.now()
        if node in self.monitors:
            self._originate(now)
        self._spf(now)

    def set_link_cost(self, peer: str, cost: float | None) -> None:
        """Override this node's cost for the link to ``peer`` (the operator's and the
        Supervisor's knob); ``None`` returns to the measured cost (configured cost x ETX),
        ``math.inf`` drains the link: it stays up and two-way confirmed but is advertised
        at :data:`DRAIN_COST`, so SPF uses it only where nothing else reaches.

        The confirmed graph costs a link at the larger of both ends' claims, so an
        override raises the cost in both directions but cannot lower it below what the
        other end advertises.  The new LSA is flooded at once.  A dearer link keeps the
        routes through it for ``repair_hold_s`` (it still forwards), so the rest of the
        mesh moves first and no micro-loop forms through this node (ordered FIB updates).
        Idempotent.
        """
        if peer not in self.monitors:
            raise TopologyError(
                f"node {self.name} has no link to {peer!r}",
                fix=f"name one of its neighbours: {', '.join(sorted(self.monitors))}",
                node=self.name,
                peer=peer,
            )
        if cost is not None and (math.isnan(cost) or cost <= 0):
            raise MeshError(
                f"link cost {cost!r} for {self.name}-{peer} must be a positive number",
                fix="pass a cost > 0, math.inf to drain the link, or None to clear",
            )
        if self.overrides.get(peer) == cost:
            return
        now = self.clock.now()
        before = self._link_cost(peer)
        if cost is None:
            self.overrides.pop(peer)
        else:
            self.overrides[peer] = cost
        if self._link_cost(peer) > before:
            self._hold_routes_via(peer, now)
        if self._advertised is not None:
            self._advertised.pop(peer, None)  # the new cost goes out exact, not sticky
        self._event("cost_override", peer, "cleared" if cost is None else f"{cost:g}")
        self.log.info("link cost override", neighbor=peer, cost=cost)
        if now < self._quiet_until:
            self._advertised = None  # advertised as soon as the post-restart quiet ends
        else:
            self._originate(now)
        self._spf(now)

    def release(self, node: str) -> None:
        if self.isolated.pop(node, None) is not None:
            self._event("released", node)
            now = self.clock.now()
            if node in self.monitors:
                self._originate(now)
            self._spf(now)

    def warm_up(self) -> tuple[Lsa, bytes]:
        """Declare every link up without probation and originate this node's LSA without
        flooding it; returns the LSA and its datagram.  With :meth:`prime`, starts the node
        as if the mesh had converged long ago (the simulator's and the twin's warm start)."""
        now = self.clock.now()
        for monitor in self.monitors.values():
            monitor.assume_up(now)
        self._originate(now, flood=False)
        own = self.lsdb.get(self.name)
        if own is None:
            raise MeshError(f"node {self.name} failed to store its own LSA")
        return own.lsa, own.raw

    def prime(self, lsas: Iterable[tuple[Lsa, bytes]]) -> None:
        """Store other nodes' LSAs, already verified by the caller, and compute routes."""
        now = self.clock.now()
        for lsa, raw in lsas:
            if lsa.origin != self.name:
                self.lsdb.install(lsa, raw, now)
        self._spf(now)

    def add_neighbor(self, neighbor: str, cost: float = 1.0) -> None:
        """Start probing a new link (idempotent; updates the cost of a known one)."""
        if neighbor == self.name:
            raise MeshError(f"node {self.name} cannot be its own neighbour")
        self.link_costs[neighbor] = cost
        if neighbor not in self.monitors:
            self.monitors[neighbor] = LinkMonitor(neighbor, self.params, self._wall_seq())

    def remove_neighbor(self, neighbor: str) -> None:
        """Stop probing a link; routes through it are repaired as after a carrier loss."""
        if neighbor in self.monitors:
            self.link_event(neighbor, up=False)
            del self.monitors[neighbor]
            self.link_costs.pop(neighbor, None)
            self.overrides.pop(neighbor, None)
            self._carrier_lost.discard(neighbor)

    def drain_events(self) -> list[MeshEvent]:
        """Events since the last call (link changes, flagged and isolated nodes)."""
        events = list(self.events)
        self.events.clear()
        return events

    def snapshot(self) -> NodeSnapshot:
        flagged = dict(self.tracker.flagged)
        flagged.update({node: [reason] for node, reason in self.isolated.items()})
        return NodeSnapshot(
            self.name,
            self.codec.wall(),
            link_snapshots(self.monitors),
            dict(self.installed),
            len(self.lsdb),
            flagged,
            self.counters.flat(),
            dict(self.overrides),
        )

    def link_batch(self) -> TelemetryBatch:
        """Per-link metrics (:data:`~x0tta6bl4.mesh.stats.LINK_METRICS`) as one batch."""
        return link_batch(self.name, self.monitors, self.codec.wall())

    # --- hellos and links ------------------------------------------------------------

    def _hello(self, neighbor: str, monitor: LinkMonitor, hello: Hello, now: float) -> None:
        if hello.origin != neighbor or hello.dest != self.name:
            self._reject("misdirected", f"hello {hello.origin}->{hello.dest} on link {neighbor}")
            return
        if monitor.is_replay(hello.seq):
            self._reject("replayed", f"hello seq {hello.seq} from {neighbor} is not newer")
            return
        try:
            self.codec.accept_hello(hello)
        except SecurityError as exc:
            self._reject(str(exc.context.get("reason", "forged")), exc.message)
            return
        if monitor.up and hello.echo_seq == 0 and monitor.hellos_received:
            # The neighbour never heard us: a new incarnation (actor restart) behind a
            # link we kept up.  Hand it the database now rather than at the next refresh.
            self._sync_database(neighbor)
        if monitor.on_hello(now, hello.seq, hello.echo_seq, hello.echo_delay_s, hello.rx_ratio):
            self._link_up(neighbor, now)

    def _link_up(self, neighbor: str, now: float) -> None:
        self.counters.link_ups += 1
        self._event("link_up", neighbor)
        self.log.info("link up", neighbor=neighbor)
        # Good news waits for the next tick, so links that come up together (a cold
        # start) go out in one LSA; bad news (_link_down) goes out at once.
        self._sync_database(neighbor)
        if neighbor in self._silent and now >= self._quiet_until:
            # A silent neighbour is back (its actor restarted), and its direct route
            # was held.  Until our LSA and SPF carry the link again, SPF reached it over
            # a detour whose next node sent the traffic back here (a micro-loop, traced).
            self._originate(now)
            self._spf(now)

    def _sync_database(self, neighbor: str) -> None:
        """Send ``neighbor`` every stored LSA (ours included) still inside the replay window."""
        horizon = self.codec.wall() - 0.9 * self.settings.replay_window_s
        for entry in self.lsdb:
            if entry.lsa.ts >= horizon:
                self._send(neighbor, entry.raw)

    def _link_down(self, neighbor: str, now: float, cause: str) -> None:
        """Local repair first (same call, no flood, no round trip), then reconverge.

        Silence (missed hellos) does not prove the neighbour stopped forwarding: its
        control plane may be restarting while its kernel forwards on (non-stop
        forwarding).  So the route *to* a silent neighbour stays direct while its LSA
        still claims the link (a live neighbour that lost the link withdraws it, and SPF
        routes around) and ``stale_route_hold_s`` has not passed.  Repairing it with an alternate
        instead made every neighbour of a restarting node do so at once, with
        alternates that could point at each other.  Carrier loss is proof: no hold."""
        self.counters.link_downs += 1
        self.counters.heal_events += 1
        if cause == "carrier":
            self._silent.pop(neighbor, None)
        else:
            self._silent[neighbor] = now
        repairs = []
        for dest, entry in self.table.items():
            current = self.installed.get(dest)
            if current is None or current.next_hop != neighbor or dest in self._silent:
                continue
            alt = entry.alternate
            if alt is not None and alt in self.monitors and self.monitors[alt].up:
                repairs.append(Route(dest, alt, entry.alternate_cost))
                self._pins[dest] = now + self.settings.repair_hold_s
        if repairs:
            self.counters.lfa_repairs += len(repairs)
            self._push(repairs, [])
        self._event("link_down", neighbor, cause)
        self.log.info("link down", neighbor=neighbor, cause=cause, lfa_repairs=len(repairs))
        self._originate(now)
        self._spf(now)

    def _hold_routes_via(self, neighbor: str, now: float) -> None:
        """Keep the routes through a link that got dearer but still forwards for
        ``repair_hold_s``: its ends move last, so nodes that have not yet heard of the
        change cannot send traffic back to them (ordered FIB updates, RFC 6976)."""
        until = now + self.settings.repair_hold_s
        for dest, route in self.installed.items():
            if route.next_hop == neighbor:
                self._pins[dest] = max(self._pins.get(dest, until), until)

    def _send(self, neighbor: str, payload: bytes) -> None:
        try:
            self.transport.send(neighbor, payload)
        except MeshError as exc:
            self.counters.send_errors += 1
            self.log.debug("send failed", neighbor=neighbor, error=exc.message)

    # --- link-state advertisements ------------------------------------------------------

    def _lsa(self, neighbor: str, lsa: Lsa, raw: bytes, now: float) -> None:
        if lsa.origin == self.name:
            if lsa.seq > self.own_seq:
                # A previous incarnation's LSA outlived it: supersede it.
                self.own_seq = lsa.seq
                self._originate(now)
            return
        verdict = self.lsdb.verdict(lsa)
        if verdict == Verdict.DUPLICATE:
            self.counters.duplicates += 1
            return
        if verdict == Verdict.STALE:
            stored = self.lsdb.get(lsa.origin)
            if stored is not None and stored.lsa.ts - lsa.ts <= FLOOD_RACE_S:
                self.counters.stale += 1  # an older copy overtaken in flight: normal
            else:
                self._reject("replayed", f"LSA seq {lsa.seq} of {lsa.origin} is older than ours")
            return
        old = self.lsdb.get(lsa.origin)
        old_cost = old.links.get(self.name) if old is not None else None
        changed = self.lsdb.install(lsa, raw, now)
        self.counters.lsas_accepted += 1
        if old_cost is not None and changed == Change.WORSE:
            new_cost = self.lsdb.get(lsa.origin).links.get(self.name)  # type: ignore[union-attr]
            if new_cost is not None and new_cost > old_cost:
                self._hold_routes_via(lsa.origin, now)  # our link to it got dearer
        for other, monitor in self.monitors.items():
            if other != neighbor and monitor.up:
                self._send(other, raw)
        if changed:
            self._dirty = True
            if changed == Change.WORSE or now - self._last_spf >= self.settings.spf_hold_s:
                self._spf(now)

    def _link_cost(self, neighbor: str) -> float:
        """What this node advertises for the link: the override, else cost x ETX."""
        override = self.overrides.get(neighbor)
        if override is None:
            return round(self.link_costs[neighbor] * self.monitors[neighbor].etx, 3)
        return min(override, DRAIN_COST)

    def _current_links(self) -> dict[str, float]:
        """The links to advertise.  A cost within :data:`COST_HYSTERESIS` of the one last
        advertised stays as advertised, also in an LSA that goes out for another reason
        (a link down): its neighbours would take the jitter for a link that got dearer
        and keep their routes through this node for ``repair_hold_s``, routes that the
        very change this LSA announces may have broken (a 500 ms micro-loop, traced)."""
        old = self._advertised or {}
        links = {}
        for n, m in self.monitors.items():
            if not m.up or n in self.isolated:
                continue
            cost, before = self._link_cost(n), old.get(n, math.nan)  # nan: never advertised
            if n not in self.overrides and abs(cost - before) <= COST_HYSTERESIS * before:
                cost = before
            links[n] = cost
        return links

    def _restarting(self, now: float) -> bool:
        """Inside the quiet window of :meth:`adopt`, some link not back yet: not up here,
        or, after a restart, not yet confirmed by the neighbour's LSA (until then SPF
        cannot use it, while nodes that got that LSA first already route through us)."""
        if now >= self._quiet_until:
            return False
        for neighbor, monitor in self.monitors.items():
            if not monitor.up:
                return True
            entry = self.lsdb.get(neighbor)
            if self._adopted and (entry is None or self.name not in entry.links):
                return True
        return False

    def _refresh_own(self, now: float) -> None:
        links = self._current_links()
        if self._restarting(now):
            return
        old = self._advertised
        if (
            old is None
            or links.keys() != old.keys()
            or any(abs(c - old[n]) > COST_HYSTERESIS * old[n] for n, c in links.items())
            or now - self._last_origination >= self.settings.lsa_refresh_s
        ):
            self._originate(now, links)
        elif self._repeats > 0:
            self._repeats -= 1
            own = self.lsdb.get(self.name)
            if own is not None:
                self._flood(own.raw)

    def _originate(
        self, now: float, links: dict[str, float] | None = None, flood: bool = True
    ) -> None:
        links = self._current_links() if links is None else links
        self.own_seq = max(self.own_seq + 1, self._wall_seq())
        lsa = Lsa(self.name, self.own_seq, self.codec.wall(), tuple(sorted(links.items())))
        raw = self.codec.seal(lsa)
        if self.lsdb.install(lsa, raw, now):
            self._dirty = True
        self._advertised = links
        self._last_origination = now
        self._repeats = OWN_LSA_REPEATS
        self.counters.lsas_originated += 1
        if flood:
            self._flood(raw)

    def _flood(self, raw: bytes) -> None:
        for neighbor, monitor in self.monitors.items():
            if monitor.up:
                self._send(neighbor, raw)

    # --- SPF and routes ------------------------------------------------------------

    def _spf(self, now: float) -> None:
        graph, unconfirmed = self.lsdb.graph(self._no_transit())
        if self.settings.byzantine:
            # Absence is not lying: an origin none of whose links is confirmed any more
            # (a dead or restarting node whose neighbours stopped hearing it) attracts no
            # traffic; only a node with real links can use false claims.
            unconfirmed = {
                origin: claims
                for origin, claims in unconfirmed.items()
                if (i := graph.index.get(origin)) is not None and graph.adj[i]
            }
            flagged, cleared = self.tracker.update(unconfirmed, now)
            for node in cleared:
                self._event("cleared", node)
            if flagged:
                self._report_flagged(flagged)
                graph, _ = self.lsdb.graph(self._no_transit())
        table = routing_table(graph, self.name)
        if _hops(table) != _hops(self.table):
            self._table_changed_at = now
        self.table = table
        self._held = self._held_routes(graph) if len(self.table) + 1 < len(self.lsdb) else {}
        self._last_spf = now
        self._dirty = False
        self.counters.spf_runs += 1
        self._reconcile(now)

    def _held_routes(self, graph: Graph) -> dict[str, Route | None]:
        """Routes for stored origins SPF no longer reaches, while ``stale_route_hold_s``
        keeps them (:func:`~x0tta6bl4.mesh.spf.routes_by_claims`).  None where this node
        lost carrier to the origin: its kernel drops the traffic (no detour that could
        loop back through a neighbour that still points here)."""
        claims = {
            e.lsa.origin: e.links
            for e in self.lsdb
            if e.lsa.origin != self.name and e.lsa.origin not in self.table
        }
        held: dict[str, Route | None] = {}
        for dest, (hop, cost) in routes_by_claims(graph, self.name, claims, self.monitors).items():
            lost = dest in self._carrier_lost and self.name in claims[dest]
            held[dest] = None if lost or hop in self._carrier_lost else Route(dest, hop, cost)
        return held

    def _no_transit(self) -> set[str]:
        return set(self.tracker.flagged) | set(self.isolated)

    def _report_flagged(self, nodes: list[str]) -> None:
        for node in nodes:
            claims = ",".join(self.tracker.flagged.get(node, []))
            self._event("unconfirmed_links", node, claims)
            self.log.warning("node advertises unconfirmed links", suspect=node, links=claims)

    def _reconcile(self, now: float) -> None:
        """Make the sink match the table, keeping repair pins and stale routes while held."""
        # Without fib_backups there is nothing to settle (no reconcile a second later).
        settled = not self.settings.fib_backups or now - self._table_changed_at >= BACKUP_SETTLE_S
        desired: dict[str, Route] = {}
        for dest, e in self.table.items():
            if settled:
                backup = self._backup(e)
            else:
                current = self.installed.get(dest)
                same_hop = current is not None and current.next_hop == e.next_hop
                backup = current.backup if current is not None and same_hop else None
            desired[dest] = Route(dest, e.next_hop, e.cost, backup)
        self._backups_pending = not settled
        for dest, until in list(self._pins.items()):
            current = self.installed.get(dest)
            monitor = self.monitors.get(current.next_hop) if current else None
            if current is None or now >= until or monitor is None or not monitor.up:
                del self._pins[dest]
            else:
                desired[dest] = current
        hold = self.settings.stale_route_hold_s
        for dest, current in self.installed.items():
            if dest in desired:
                self._stale.pop(dest, None)
                continue
            since = self._stale.setdefault(dest, now)
            held = self._held.get(dest, current)
            if held is not None and now - since < hold and held.next_hop not in self._carrier_lost:
                desired[dest] = held
        if self._restarting(now):
            for dest, route in self.installed.items():
                if route.next_hop not in self._carrier_lost:
                    desired[dest] = route
        for neighbor, since in list(self._silent.items()):
            monitor = self.monitors.get(neighbor)
            entry = self.lsdb.get(neighbor)
            if (
                monitor is None
                or monitor.up
                or neighbor in self._carrier_lost
                or entry is None
                or self.name not in entry.links
                or now - since >= hold
            ):
                del self._silent[neighbor]
            else:
                desired[neighbor] = Route(neighbor, neighbor, self.link_costs[neighbor])
        self._apply(desired)

    @property
    def backups_settled(self) -> bool:
        """Whether every route's backup matches the current table (see
        :data:`BACKUP_SETTLE_S`): the mesh is armed for carrier loss again."""
        return not self._backups_pending

    def _holds(self) -> bool:
        """Whether a repair pin, stale route or silent neighbour's route is being held."""
        return bool(self._pins or self._stale or self._silent)

    def _backups_due(self, now: float) -> bool:
        return self._backups_pending and now - self._table_changed_at >= BACKUP_SETTLE_S

    def _backup(self, entry: Entry) -> str | None:
        """The entry's alternate where its link is up: the forwarding plane's own repair."""
        alt = entry.alternate if self.settings.fib_backups else None
        monitor = self.monitors.get(alt) if alt is not None else None
        if monitor is None or not monitor.up or alt in self._carrier_lost:
            return None
        return alt

    def _apply(self, desired: dict[str, Route]) -> None:
        install = [
            route
            for dest, route in desired.items()
            if (cur := self.installed.get(dest)) is None
            or (cur.next_hop, cur.backup) != (route.next_hop, route.backup)
        ]
        remove = sorted(dest for dest in self.installed if dest not in desired)
        self._push(install, remove)

    def _push(self, install: list[Route], remove: list[str]) -> None:
        if not install and not remove:
            self._routes_dirty = False
            return
        try:
            self.routes.apply(install, remove)
        except MeshError as exc:
            self.counters.route_errors += 1
            self._routes_dirty = True
            self.log.warning("route update failed; retrying next tick", error=str(exc))
            return
        for route in install:
            self.installed[route.dest] = route
        for dest in remove:
            self.installed.pop(dest, None)
            self._stale.pop(dest, None)
        self.counters.route_changes += len(install) + len(remove)
        self._routes_dirty = False

    # --- helpers ---------------------------------------------------------------------

    def _wall_seq(self) -> int:
        """Sequence numbers start from wall-clock microseconds, so they keep growing
        across restarts and receivers never take a new incarnation for a replay."""
        return int(self.codec.wall() * 1e6)

    def _reject(self, reason: str, detail: str) -> None:
        self.counters.rejected[reason] = self.counters.rejected.get(reason, 0) + 1
        self.log.debug("datagram dropped", reason=reason, detail=detail)

    def _event(self, kind: str, subject: str, detail: str = "") -> None:
        self.events.append(MeshEvent(self.codec.wall(), self.name, kind, subject, detail))


def _hops(table: Mapping[str, Entry]) -> dict[str, tuple[str, str | None]]:
    return {dest: (e.next_hop, e.alternate) for dest, e in table.items()}


def _check_timers(settings: MeshSettings) -> None:
    """Refuse timer combinations under which healthy LSAs would expire or be refused."""
    if settings.lsa_max_age_s <= 2 * settings.lsa_refresh_s:
        raise ConfigError(
            f"mesh.lsa_max_age_s={settings.lsa_max_age_s:g} must exceed twice "
            f"mesh.lsa_refresh_s={settings.lsa_refresh_s:g}, or live LSAs expire",
            fix="raise mesh.lsa_max_age_s or lower mesh.lsa_refresh_s",
        )
    if settings.byzantine and settings.lsa_refresh_s > settings.replay_window_s / 2:
        raise ConfigError(
            f"mesh.lsa_refresh_s={settings.lsa_refresh_s:g} must be at most half of "
            f"mesh.replay_window_s={settings.replay_window_s:g}, or database exchanges "
            "hand over LSAs the receiver refuses as replayed",
            fix="lower mesh.lsa_refresh_s or widen mesh.replay_window_s",
        )
