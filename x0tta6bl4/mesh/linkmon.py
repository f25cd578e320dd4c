"""Per-neighbour link monitoring: hellos in, RTT, loss, ETX and an up/down verdict.

Each node sends one HELLO per probe interval on every link.  A HELLO carries
its own per-link sequence number and echoes the last sequence number it got
from the other end, how long ago (so the sender can subtract the hold time
and read the round trip without synchronised clocks), and the delivery ratio
it measures for the other end's hellos.  From that a :class:`LinkMonitor`
keeps

* ``rtt_s``: moving average of the round trip;
* ``dr``: delivery ratio of the neighbour's hellos to us (sequence gaps count
  as losses), ``df``: what the neighbour reports for ours;
* ``etx = 1 / (df * dr)`` (De Couto et al.), the routing cost;
* a state: DOWN, PROBATION (hearing hellos, not trusted yet) and UP.

A link goes DOWN after ``miss_threshold`` probe intervals without a hello,
when the neighbour's echoes show it no longer hears us (a one-way link), or
at once on :meth:`LinkMonitor.carrier_down`.  It comes back UP only after
``hold_down_probes`` good hellos in a row, both ways (the neighbour echoes
ours); every down within ``FLAP_WINDOW_S`` doubles that number (up to
``MAX_FLAP_SHIFT`` doublings), so a flapping link does not flap routes.  It comes
back with the delivery ratio of its probation (every hello), not the outage's.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FLAP_WINDOW_S", "MAX_FLAP_SHIFT", "LinkMonitor", "LinkParams", "LinkState"]

FLAP_WINDOW_S = 30.0
"""Downs within this many seconds count as recent flaps."""
MAX_FLAP_SHIFT = 4
"""At most 2**4 = 16 times ``hold_down_probes`` after repeated flaps."""
MAX_GAP_LOSSES = 64
"""A sequence gap counts as at most this many lost hellos (enough to drive the ratio to ~0)."""
MIN_RATIO = 1e-3
"""Delivery ratios are floored here so ETX stays finite (ETX <= 1e6)."""
SENT_MEMORY = 64
"""Send times of this many recent hellos are kept to match echoes."""


class LinkState(StrEnum):
    DOWN = "down"
    PROBATION = "probation"
    UP = "up"


@dataclass(frozen=True)
class LinkParams:
    """Probing parameters, usually taken from ``MeshSettings``."""

    probe_interval_s: float = 0.02
    miss_threshold: int = 3
    hold_down_probes: int = 3
    ewma_weight: float = 0.2


class LinkMonitor:
    """The view of one link from one end.  Pure state; time comes in as arguments.

    Args:
        neighbor: the node at the other end.
        params: probing parameters.
        first_seq: first sequence number of our hellos on this link (start it
            from the wall clock in microseconds so it keeps growing across restarts).
    """

    def __init__(self, neighbor: str, params: LinkParams, first_seq: int = 1) -> None:
        self.neighbor = neighbor
        self.params = params
        self.state = LinkState.DOWN
        self.rtt_s: float | None = None
        self.dr = 0.0
        """Delivery ratio of the neighbour's hellos, as we measure it."""
        self.df = 0.0
        """Delivery ratio of our hellos, as the neighbour reports it."""
        self.hellos_received = 0
        self.hellos_sent = 0
        self.measured = False
        """Whether both ratios are measured: the neighbour has reported hearing us (until
        then ``df`` is 0 and ``etx`` the 1e6 of a dead link, on a link just starting)."""
        self.transitions = 0
        self.good_in_row = 0
        self.last_rx: float | None = None
        self.last_seq: int | None = None
        """Newest hello sequence number received (replay guard and gap counter)."""
        self.next_seq = first_seq
        self._sent: deque[tuple[int, float]] = deque(maxlen=SENT_MEMORY)
        self._downs: deque[float] = deque()
        self._echo_fresh = False
        self._echoed_seq: int | None = None
        """Our newest hello the neighbour says it got (one-way detection)."""
        self._missed_counted = 0
        self._dr_on_time = 0.0
        """``dr`` before :meth:`on_tick` counted the current run of overdue hellos."""

    # --- sending ---------------------------------------------------------------

    def next_hello(self, now: float) -> tuple[int, int, float, float]:
        """Allocate our next hello: ``(seq, echo_seq, echo_delay_s, rx_ratio)``."""
        seq = self.next_seq
        self.next_seq += 1
        self.hellos_sent += 1
        self._sent.append((seq, now))
        echo_seq = self.last_seq or 0
        delay = 0.0 if self.last_rx is None else max(0.0, now - self.last_rx)
        return seq, echo_seq, delay, self.dr

    # --- receiving -------------------------------------------------------------

    def is_replay(self, seq: int) -> bool:
        """Whether ``seq`` is not newer than the last hello accepted on this link."""
        return self.last_seq is not None and seq <= self.last_seq

    def on_hello(
        self, now: float, seq: int, echo_seq: int, echo_delay_s: float, rx_ratio: float
    ) -> bool:
        """Account one authentic hello; returns True when the link state changed.

        The caller has checked the sequence number with :meth:`is_replay`.
        """
        w = self.params.ewma_weight
        if self.last_seq is not None:
            gap = min(seq - self.last_seq - 1, MAX_GAP_LOSSES)
            if gap > 0:
                self.good_in_row = 0  # hellos were lost: the streak is broken, late or not
            if self._missed_counted:
                # tick() counted overdue hellos as lost; the sequence numbers now say how
                # many were.  A stalled sender skips none: its late hellos counted as
                # losses made the loss of every link on a busy host jump (noise the
                # Supervisor's baselines learned, so a really lossy link hid in it).
                self.dr = self._dr_on_time
            if gap > 0:
                self.dr *= (1 - w) ** gap
            self.dr = self.dr * (1 - w) + w
        else:
            self.dr = 1.0
        self._missed_counted = 0
        self.last_seq = seq
        self.last_rx = now
        self.hellos_received += 1
        if echo_seq:
            # echo_seq 0: the neighbour has no measurement of us yet (a new incarnation),
            # which is not the same as having lost everything.
            self.df = min(1.0, max(0.0, rx_ratio))
            self.measured = True
        # Our sequence numbers are consecutive, so the echoed hello's slot is computed.
        sent = self._sent
        i = echo_seq - (self.next_seq - len(sent))
        self._echo_fresh = 0 <= i < len(sent) and sent[i][0] == echo_seq
        if self._echo_fresh:
            sent_at = sent[i][1]
            sample = max(0.0, now - sent_at - echo_delay_s)
            self.rtt_s = sample if self.rtt_s is None else self.rtt_s * (1 - w) + sample * w
            self._echoed_seq = echo_seq
            self.good_in_row += 1
        else:
            self.good_in_row = 0
        return self._maybe_up(now)

    def _maybe_up(self, now: float) -> bool:
        if self.state == LinkState.UP:
            return False
        if self.good_in_row >= self.required_good(now):
            # The losses of the outage are history: the link has just delivered every
            # hello of its probation.  Carried over, they made it come back at several
            # times its cost and re-advertise each step down (route flaps, micro-loops).
            self.dr = 1.0
            self._set(LinkState.UP)
            return True
        if self.state == LinkState.DOWN:
            self._set(LinkState.PROBATION)
        return False

    def required_good(self, now: float) -> int:
        """Good hellos in a row needed to come up now (grows with recent flaps)."""
        while self._downs and now - self._downs[0] > FLAP_WINDOW_S:
            self._downs.popleft()
        shift = min(max(0, len(self._downs) - 1), MAX_FLAP_SHIFT)
        return self.params.hold_down_probes << shift

    # --- time and carrier ------------------------------------------------------

    def missed(self, now: float) -> int:
        """Whole probe intervals since the last hello: down at ``miss_threshold`` (BFD's rule)."""
        if self.last_rx is None:
            return 0
        return max(0, math.floor((now - self.last_rx) / self.params.probe_interval_s + 1e-9))

    def one_way(self, now: float) -> bool:
        """Whether the neighbour has stopped hearing us: it still talks, but its echoes
        name none of the hellos we sent after the echoed one, the first of which left
        ``miss_threshold`` intervals ago.  (Measured from what we sent, not from the
        echoed hello: after a stall of ours, in which we sent nothing, the echo is old
        and the link fine.)"""
        if self._echoed_seq is None:
            return False
        sent = self._sent
        i = self._echoed_seq + 1 - (self.next_seq - len(sent))
        if i >= len(sent):
            return False  # nothing sent since the hello it echoes
        limit = self.params.miss_threshold * self.params.probe_interval_s
        return i < 0 or now - sent[i][1] > limit

    def overdue(self, now: float) -> int:
        """Hellos counted as lost by now: each one half an interval after it was due.

        A hello that comes a little late is not lost: counting it at the first tick
        past its due time made the delivery ratio, hence ETX and the advertised cost,
        jump with every bit of scheduling jitter on a busy host (a flood and an SPF
        on every node each time).  Detection still uses :meth:`missed`."""
        if self.last_rx is None:
            return 0
        return max(0, math.floor((now - self.last_rx) / self.params.probe_interval_s - 0.5))

    def on_tick(self, now: float) -> bool:
        """Check for missed hellos and one-way links; returns True when the link just
        went down."""
        missed = self.missed(now)
        lost = self.overdue(now)
        if lost > self._missed_counted:
            if not self._missed_counted:
                self._dr_on_time = self.dr
            w = self.params.ewma_weight
            self.dr *= (1 - w) ** min(lost - self._missed_counted, MAX_GAP_LOSSES)
            self._missed_counted = lost
            self.good_in_row = 0
        if self.state != LinkState.DOWN and (
            missed >= self.params.miss_threshold or (self.up and self.one_way(now))
        ):
            self._go_down(now)
            return True
        return False

    def assume_up(self, now: float) -> None:
        """Declare the link up and perfect without probation (a simulator's warm start)."""
        self.dr = self.df = 1.0
        self.measured = True
        self.last_rx = now
        self._set(LinkState.UP)

    def carrier_down(self, now: float) -> bool:
        """The interface lost carrier: down at once. Returns True when that changed state."""
        self.good_in_row = 0
        if self.state == LinkState.DOWN:
            return False
        self._go_down(now)
        return True

    def _go_down(self, now: float) -> None:
        self._downs.append(now)
        self._set(LinkState.DOWN)
        self.good_in_row = 0

    def _set(self, state: LinkState) -> None:
        if state != self.state:
            self.state = state
            self.transitions += 1

    # --- metrics ---------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self.state == LinkState.UP

    @property
    def loss(self) -> float:
        """Loss of the neighbour's hellos towards us (1 - delivery ratio)."""
        return 1.0 - self.dr

    @property
    def etx(self) -> float:
        """Expected transmissions: ``1 / (df * dr)``, floored ratios so it stays finite."""
        return 1.0 / (max(self.df, MIN_RATIO) * max(self.dr, MIN_RATIO))
