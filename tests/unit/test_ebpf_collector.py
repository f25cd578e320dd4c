"""BatchMaker: columnar batches, per-second rates and Prometheus increments."""

from __future__ import annotations

import math

import numpy as np

from x0tta6bl4.ebpf.collector import BatchMaker, Reading


def _by_kind(batches: list) -> dict:
    return {b.kind: b for b in batches}


def _row(batch, entity: str) -> dict[str, float]:
    i = list(batch.entity).index(entity)
    return {name: float(col[i]) for name, col in batch.metrics.items()}


def test_first_reading_has_counters_and_nan_rates() -> None:
    maker = BatchMaker("ebpf:n1")
    reading = Reading(
        ts=100.0,
        iface=[
            ("host/v0", "xdp", "ipv4", "udp", 10, 1000),
            ("host/v0", "xdp", "ipv4", "tcp", 5, 500),
            ("host/v0", "tc_egress", "ipv4", "udp", 7, 700),
        ],
        drops=[("host/v0", "NETFILTER_DROP", 3), ("host/v0", "NETFILTER_DROP", 2)],
        retrans=[("host/10.0.0.2:5201", 4)],
        hooks={"host/v0": ["xdp", "tc_ingress", "tc_egress"], "host/v1": ["xdp"]},
    )
    batches, increments = maker.make(reading)
    kinds = _by_kind(batches)
    assert set(kinds) == {"iface", "iface_proto", "drop", "retrans"}
    assert all(b.source == "ebpf:n1" for b in batches)
    v0 = _row(kinds["iface"], "host/v0")
    assert (v0["xdp_packets"], v0["xdp_bytes"]) == (15, 1500)
    assert (v0["tc_ingress_packets"], v0["tc_egress_packets"]) == (0, 7)
    assert math.isnan(v0["xdp_packets_per_s"])
    v1 = _row(kinds["iface"], "host/v1")
    assert v1["xdp_packets"] == 0
    assert math.isnan(v1["tc_ingress_packets"]), "a hook that is not attached is NaN, not 0"
    assert _row(kinds["drop"], "host/v0/NETFILTER_DROP")["drops"] == 5
    assert _row(kinds["iface_proto"], "host/v0/xdp/ipv4/tcp")["packets"] == 5
    assert _row(kinds["retrans"], "host/10.0.0.2:5201")["retransmits"] == 4
    totals = {(i.metric, i.labels): i.value for i in increments}
    assert totals[("packets", (("iface", "host/v0"), ("hook", "xdp")))] == 15
    assert totals[("drops", (("iface", "host/v0"), ("reason", "NETFILTER_DROP")))] == 5
    assert all(i.value > 0 for i in increments)


def test_rates_and_increments_between_readings() -> None:
    maker = BatchMaker("ebpf:n1")
    hooks = {"host/v0": ["xdp"]}
    maker.make(Reading(10.0, iface=[("host/v0", "xdp", "ipv4", "udp", 100, 10_000)], hooks=hooks))
    batches, increments = maker.make(
        Reading(12.0, iface=[("host/v0", "xdp", "ipv4", "udp", 300, 50_000)], hooks=hooks)
    )
    v0 = _row(_by_kind(batches)["iface"], "host/v0")
    assert v0["xdp_packets_per_s"] == 100.0
    assert v0["xdp_bytes_per_s"] == 20_000.0
    assert {i.metric: i.value for i in increments} == {"packets": 200, "bytes": 40_000}


def test_counter_going_backwards_is_a_reset_not_a_negative_rate() -> None:
    maker = BatchMaker("ebpf:n1")
    hooks = {"host/v0": ["xdp"]}
    maker.make(Reading(1.0, iface=[("host/v0", "xdp", "ipv4", "udp", 500, 5000)], hooks=hooks))
    batches, increments = maker.make(
        Reading(2.0, iface=[("host/v0", "xdp", "ipv4", "udp", 20, 200)], hooks=hooks)
    )
    v0 = _row(_by_kind(batches)["iface"], "host/v0")
    assert math.isnan(v0["xdp_packets_per_s"])
    assert {i.metric: i.value for i in increments} == {"packets": 20, "bytes": 200}


def test_entities_that_vanish_are_forgotten() -> None:
    maker = BatchMaker("ebpf:n1")
    maker.make(Reading(1.0, drops=[("host/v0", "NO_SOCKET", 9)]))
    maker.make(Reading(2.0))
    batches, increments = maker.make(Reading(3.0, drops=[("host/v0", "NO_SOCKET", 9)]))
    row = _row(_by_kind(batches)["drop"], "host/v0/NO_SOCKET")
    assert math.isnan(row["drops_per_s"])
    assert increments[0].value == 9


def test_batches_are_columnar_numpy() -> None:
    maker = BatchMaker("ebpf:n1")
    batches, _ = maker.make(
        Reading(5.0, iface=[("host/v0", "xdp", "ipv4", "udp", 1, 60)], hooks={"host/v0": ["xdp"]})
    )
    for batch in batches:
        assert batch.ts.dtype == np.float64
        columns = batch.metrics.values()
        assert all(col.dtype == np.float64 and len(col) == len(batch) for col in columns)
    assert maker.make(Reading(6.0))[0] == []


def test_unchanged_batches_are_repeated_only_every_resend_interval() -> None:
    maker = BatchMaker("ebpf:n1", unchanged_resend_s=10.0)
    hooks = {"host/v0": ["xdp"]}

    def kinds(ts: float, packets: int, drops: int) -> set[str]:
        reading = Reading(
            ts,
            iface=[("host/v0", "xdp", "ipv4", "udp", packets, packets * 100)],
            drops=[("host/v0", "NETFILTER_DROP", drops)],
            hooks=hooks,
        )
        return {b.kind for b in maker.make(reading)[0]}

    assert kinds(1.0, 10, 3) == {"iface", "iface_proto", "drop"}, "first reading: everything"
    assert kinds(2.0, 20, 3) == {"iface", "iface_proto"}, "drops did not move"
    assert kinds(3.0, 20, 4) == {"drop"}, "only the drops moved"
    assert kinds(12.0, 20, 4) == {"iface", "iface_proto"}, "10 s since they were last shipped"
    assert kinds(13.0, 20, 4) == {"drop"}, "10 s since the drops were last shipped"
    assert kinds(14.0, 20, 4) == set()
    assert kinds(15.0, 5, 4) == {"iface", "iface_proto"}, "a reset is a move"
    every = BatchMaker("ebpf:n1")
    for ts in (1.0, 2.0):
        got = every.make(Reading(ts, drops=[("host/v0", "NETFILTER_DROP", 3)]))[0]
        assert [b.kind for b in got] == ["drop"], "resend 0 ships every time"
