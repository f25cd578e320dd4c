"""From cumulative kernel counters to columnar telemetry batches and metric increments.

:class:`BatchMaker` is pure (no kernel, no Ray): it takes one :class:`Reading`
of cumulative counters, remembers the previous one, and returns
:class:`~x0tta6bl4.telemetry.TelemetryBatch` objects with counters and per-second
rates, plus the increments for Prometheus counters.  Rates are NaN for the first
reading of an entity and after a counter went backwards (re-attached program).
A batch in which nothing moved is repeated only every ``unchanged_resend_s``.

Batch kinds and entities:

=============  ==============================  ==========================================
kind           entity                          metrics
=============  ==============================  ==========================================
``iface``      ``netns/iface``                 ``<hook>_packets``, ``<hook>_bytes``,
                                               ``<hook>_packets_per_s``,
                                               ``<hook>_bytes_per_s`` for each hook
                                               (``xdp``, ``tc_ingress``, ``tc_egress``;
                                               NaN where that hook is not attached)
``iface_proto``  ``netns/iface/hook/l3/l4``    ``packets``, ``bytes``, ``packets_per_s``,
                                               ``bytes_per_s``
``drop``       ``netns/iface/REASON``          ``drops``, ``drops_per_s``
``retrans``    ``netns/daddr:dport``           ``retransmits``, ``retransmits_per_s``
=============  ==============================  ==========================================
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from x0tta6bl4.ebpf.programs import HOOK_NAMES
from x0tta6bl4.telemetry import BatchBuilder, TelemetryBatch

__all__ = ["HOOKS", "BatchMaker", "Increment", "Reading"]

HOOKS: tuple[str, ...] = tuple(HOOK_NAMES.values())
_IFACE_METRICS = tuple(
    f"{hook}_{metric}"
    for hook in HOOKS
    for metric in ("packets", "bytes", "packets_per_s", "bytes_per_s")
)


@dataclass(frozen=True)
class Reading:
    """Cumulative counters read at ``ts`` (unix seconds), already named.

    Attributes:
        iface: (entity, hook, l3, l4, packets, bytes) per protocol row.
        drops: (entity, reason name, drops).
        retrans: (entity, retransmits).
        hooks: entity -> the hooks attached there (zero rows are filled for them).
    """

    ts: float
    iface: Sequence[tuple[str, str, str, str, int, int]] = ()
    drops: Sequence[tuple[str, str, int]] = ()
    retrans: Sequence[tuple[str, int]] = ()
    hooks: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Increment:
    """How much a Prometheus counter grew since the previous reading."""

    metric: str
    labels: tuple[tuple[str, str], ...]
    value: float


class BatchMaker:
    """Turns successive readings into batches; keeps only the previous values.

    Args:
        source: the ``source`` of every batch.
        unchanged_resend_s: a batch in which no counter moved since the previous
            reading (no new entity, no reset) is left out unless its kind was last
            shipped this long ago; 0 ships every batch every time.  Each batch costs
            the agent an object-store put, and an idle link or a quiet drop table
            need not be repeated every interval: its rates are 0 until it moves.
    """

    def __init__(self, source: str, unchanged_resend_s: float = 0.0) -> None:
        self.source = source
        self.unchanged_resend_s = unchanged_resend_s
        self._prev: dict[tuple[str, str], tuple[float, float]] = {}
        self._seen: dict[tuple[str, str], tuple[float, float]] = {}
        self._shipped: dict[str, float] = {}
        self._moved = False

    def _step(self, key: tuple[str, str], ts: float, value: float) -> tuple[float, float]:
        """(rate per second, increment) of a cumulative value since the last reading."""
        self._seen[key] = (ts, value)
        prev = self._prev.get(key)
        if prev is None or value != prev[1]:
            self._moved = True
        if prev is None or value < prev[1]:
            return math.nan, value
        dt = ts - prev[0]
        return ((value - prev[1]) / dt if dt > 0 else math.nan), value - prev[1]

    def _took_moved(self) -> bool:
        """Whether a counter moved since the last call (then clears the flag)."""
        moved, self._moved = self._moved, False
        return moved

    def _due(self, builder: BatchBuilder, ts: float, moved: bool) -> bool:
        if not len(builder):
            return False
        last = self._shipped.get(builder.kind)
        if moved or last is None or ts - last >= self.unchanged_resend_s:
            self._shipped[builder.kind] = ts
            return True
        return False

    def make(self, reading: Reading) -> tuple[list[TelemetryBatch], list[Increment]]:
        self._seen = {}
        batches: list[TelemetryBatch] = []
        increments: list[Increment] = []
        ts = reading.ts

        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        proto = BatchBuilder(
            self.source, "iface_proto", ("packets", "bytes", "packets_per_s", "bytes_per_s")
        )
        for entity, hook, l3, l4, packets, nbytes in reading.iface:
            total = totals[(entity, hook)]
            total[0] += packets
            total[1] += nbytes
            name = f"{entity}/{hook}/{l3}/{l4}"
            pps, _ = self._step(("p", name), ts, packets)
            bps, _ = self._step(("b", name), ts, nbytes)
            proto.add(ts, name, (packets, nbytes, pps, bps))
        for entity, hooks in reading.hooks.items():
            for hook in hooks:
                totals.setdefault((entity, hook), [0, 0])

        moved = {"iface_proto": self._took_moved()}
        iface = BatchBuilder(self.source, "iface", _IFACE_METRICS)
        for entity in sorted({e for e, _ in totals}):
            values: list[float] = []
            for hook in HOOKS:
                if (entity, hook) not in totals:
                    values.extend((math.nan,) * 4)
                    continue
                packets, nbytes = totals[(entity, hook)]
                pps, dp = self._step(("P", f"{entity}/{hook}"), ts, packets)
                bps, db = self._step(("B", f"{entity}/{hook}"), ts, nbytes)
                labels = (("iface", entity), ("hook", hook))
                increments += [Increment("packets", labels, dp), Increment("bytes", labels, db)]
                values.extend((packets, nbytes, pps, bps))
            iface.add(ts, entity, tuple(values))

        moved["iface"] = self._took_moved()
        drops = BatchBuilder(self.source, "drop", ("drops", "drops_per_s"))
        merged: dict[tuple[str, str], int] = defaultdict(int)
        for entity, reason, count in reading.drops:
            merged[(entity, reason)] += count
        for (entity, reason), count in sorted(merged.items()):
            rate, delta = self._step(("d", f"{entity}/{reason}"), ts, count)
            drops.add(ts, f"{entity}/{reason}", (count, rate))
            increments.append(Increment("drops", (("iface", entity), ("reason", reason)), delta))

        moved["drop"] = self._took_moved()
        retrans = BatchBuilder(self.source, "retrans", ("retransmits", "retransmits_per_s"))
        for entity, count in sorted(reading.retrans):
            rate, delta = self._step(("r", entity), ts, count)
            retrans.add(ts, entity, (count, rate))
            increments.append(Increment("retransmits", (("peer", entity),), delta))

        moved["retrans"] = self._took_moved()
        for builder in (iface, proto, drops, retrans):
            if self._due(builder, ts, moved[builder.kind]):
                batches.append(builder.build())
        self._prev = self._seen
        return batches, [i for i in increments if i.value > 0]
