"""Link monitoring: ETX and loss math, RTT, k-miss detection, hysteresis, carrier loss."""

from __future__ import annotations

import numpy as np
import pytest

from x0tta6bl4.mesh.linkmon import LinkMonitor, LinkParams, LinkState
from x0tta6bl4.mesh.stats import link_batch

PARAMS = LinkParams(probe_interval_s=0.02, miss_threshold=3, hold_down_probes=3, ewma_weight=0.2)


def deliver(src: LinkMonitor, dst: LinkMonitor, now: float, delay: float = 0.001) -> bool:
    """``src`` sends its next hello, ``dst`` receives it ``delay`` later; returns dst's change."""
    seq, echo, echo_delay, ratio = src.next_hello(now)
    return dst.on_hello(now + delay, seq, echo, echo_delay, ratio)


def bring_up(a: LinkMonitor, b: LinkMonitor, start: float = 0.0, rounds: int = 5) -> float:
    now = start
    for _ in range(rounds):
        deliver(a, b, now)
        deliver(b, a, now + 0.002)
        now += PARAMS.probe_interval_s
    return now


def test_etx_is_inverse_product_of_both_delivery_ratios() -> None:
    mon = LinkMonitor("b", PARAMS)
    mon.on_hello(0.0, seq=1, echo_seq=9, echo_delay_s=0.0, rx_ratio=0.5)
    assert mon.dr == 1.0
    assert mon.df == 0.5
    assert mon.etx == pytest.approx(2.0)
    # A gap of one sequence number is one lost hello: dr = (1 * 0.8) * 0.8 + 0.2.
    mon.on_hello(0.04, seq=3, echo_seq=9, echo_delay_s=0.0, rx_ratio=0.25)
    assert mon.dr == pytest.approx(0.84)
    assert mon.loss == pytest.approx(0.16)
    assert mon.etx == pytest.approx(1 / (0.25 * 0.84))


def test_a_neighbour_that_never_heard_us_reports_no_ratio() -> None:
    mon = LinkMonitor("b", PARAMS)
    mon.on_hello(0.0, seq=1, echo_seq=9, echo_delay_s=0.0, rx_ratio=0.9)
    # A restarted neighbour (echo 0) has no measurement yet: df is kept, not zeroed.
    mon.on_hello(0.02, seq=50, echo_seq=0, echo_delay_s=0.0, rx_ratio=0.0)
    assert mon.df == pytest.approx(0.9, abs=1e-4)


def test_etx_stays_finite_when_nothing_arrives() -> None:
    mon = LinkMonitor("b", PARAMS)
    assert mon.etx == pytest.approx(1e6)


def test_rtt_subtracts_the_neighbours_hold_time() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    seq, _, _, _ = a.next_hello(1.000)
    b.on_hello(1.003, seq, 0, 0.0, 0.0)
    # b answers 4 ms after it received a's hello; the answer takes 3 ms back.
    seq_b, echo, echo_delay, ratio = b.next_hello(1.007)
    assert echo == seq
    assert echo_delay == pytest.approx(0.004)
    a.on_hello(1.010, seq_b, echo, echo_delay, ratio)
    assert a.rtt_s == pytest.approx(0.006)
    # The moving average weighs a second sample by 0.2.
    seq, _, _, _ = a.next_hello(1.020)
    b.on_hello(1.030, seq, 0, 0.0, 0.0)
    seq_b, echo, echo_delay, ratio = b.next_hello(1.030)
    a.on_hello(1.040, seq_b, echo, echo_delay, ratio)
    assert a.rtt_s == pytest.approx(0.8 * 0.006 + 0.2 * 0.020)


def test_link_needs_hold_down_good_two_way_probes_to_come_up() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    changes = []
    now = 0.0
    for _ in range(4):
        changes.append(deliver(a, b, now))
        deliver(b, a, now + 0.002)
        now += 0.02
    # b's first hello from a carries no echo of b's hellos: not two-way yet.
    assert b.state == LinkState.UP
    assert changes.index(True) == 3
    assert a.up


def test_one_way_link_never_comes_up() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    for i in range(20):
        deliver(a, b, i * 0.02)  # b hears a, a never hears b
    assert b.state == LinkState.PROBATION
    assert b.good_in_row == 0


def test_down_after_exactly_k_missed_probes() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    now = bring_up(a, b)
    assert a.up
    last_rx = a.last_rx
    assert last_rx is not None
    assert not a.on_tick(last_rx + 0.059)
    assert a.up
    assert a.on_tick(last_rx + 0.060)
    assert a.state == LinkState.DOWN
    assert not a.on_tick(now + 1.0)  # already down: no second transition


def up_pair() -> tuple[LinkMonitor, LinkMonitor, float, float]:
    """Both ends of a link that is up: ``(a, b, a's delivery ratio, a's last hello)``."""
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    bring_up(a, b)
    assert a.last_rx is not None
    return a, b, a.dr, a.last_rx


def test_missed_probes_lower_the_delivery_ratio() -> None:
    a, b, before, last_rx = up_pair()
    a.on_tick(last_rx + 0.051)  # two hellos more than half an interval overdue
    assert a.dr == pytest.approx(before * 0.8 * 0.8)
    # The gap seen by sequence numbers later is not counted twice.
    b.next_seq += 2  # two hellos of b were lost on the way
    seq, echo, delay, ratio = b.next_hello(last_rx + 0.052)
    a.on_hello(last_rx + 0.053, seq, echo, delay, ratio)
    assert a.dr == pytest.approx(before * 0.8**2 * 0.8 + 0.2)


def test_a_late_hello_is_not_a_lost_one() -> None:
    a, b, before, last_rx = up_pair()
    a.on_tick(last_rx + 0.029)  # due at +0.020, not yet half an interval late
    assert a.dr == before
    seq, echo, delay, ratio = b.next_hello(last_rx + 0.0295)
    a.on_hello(last_rx + 0.03, seq, echo, delay, ratio)
    assert a.dr == pytest.approx(before * 0.8 + 0.2)
    a.on_tick(last_rx + 0.031 + 0.02 * 1.5)  # the next one is 1.5 intervals overdue: lost
    assert a.dr == pytest.approx((before * 0.8 + 0.2) * 0.8)


def test_hellos_of_a_stalled_sender_are_late_not_lost() -> None:
    a, b, before, last_rx = up_pair()
    a.on_tick(last_rx + 0.071)  # three hellos overdue: counted as lost for now
    assert a.dr == pytest.approx(before * 0.8**3)
    # b was stalled and sent nothing meanwhile: its next hello skips no number.
    seq, echo, delay, ratio = b.next_hello(last_rx + 0.072)
    a.on_hello(last_rx + 0.073, seq, echo, delay, ratio)
    assert a.dr == pytest.approx(before * 0.8 + 0.2)
    assert a.loss == pytest.approx(0.0)


def test_a_link_not_yet_measured_reports_only_its_state_in_telemetry() -> None:
    a, b = LinkMonitor("n1", PARAMS), LinkMonitor("n0", PARAMS)
    batch = link_batch("n0", {"n1": a}, 0.0)
    assert batch.metrics["up"][0] == 0.0  # the state is known ...
    assert all(np.isnan(batch.metrics[m][0]) for m in ("loss", "etx", "df", "dr"))  # ... no quality
    bring_up(a, b, rounds=3)  # b's echoes tell a how b hears it
    batch = link_batch("n0", {"n1": a}, 0.1)
    assert a.measured and batch.metrics["loss"][0] == pytest.approx(0.0)
    assert batch.metrics["etx"][0] == pytest.approx(1.0)


def test_carrier_loss_is_immediate_and_recovery_needs_hellos() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    now = bring_up(a, b)
    assert a.carrier_down(now)
    assert a.state == LinkState.DOWN
    assert not a.carrier_down(now)
    deliver(b, a, now + 0.01)
    assert a.state == LinkState.PROBATION


def test_flapping_link_needs_more_good_probes_each_time() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    now = bring_up(a, b)
    required = []
    for _ in range(3):
        a.carrier_down(now)
        required.append(a.required_good(now))
        rounds = 0
        while not a.up:
            deliver(a, b, now)
            deliver(b, a, now + 0.002)
            now += 0.02
            rounds += 1
        assert rounds >= required[-1]
    assert required == [3, 6, 12]
    # Long after the flaps the penalty is forgotten.
    a.carrier_down(now)
    assert a.required_good(now + 31.0) == 3


def test_replay_guard_refuses_old_sequence_numbers() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    seq, echo, delay, ratio = a.next_hello(0.0)
    assert not b.is_replay(seq)
    b.on_hello(0.001, seq, echo, delay, ratio)
    assert b.is_replay(seq)
    assert b.is_replay(seq - 1)
    assert not b.is_replay(seq + 1)


def test_sequence_numbers_start_where_told() -> None:
    mon = LinkMonitor("b", PARAMS, first_seq=1_700_000_000_000_000)
    assert mon.next_hello(0.0)[0] == 1_700_000_000_000_000
    assert mon.next_hello(0.02)[0] == 1_700_000_000_000_001


def test_link_goes_down_when_the_neighbour_stops_hearing_us() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    now = bring_up(a, b)
    assert a.up
    # a's hellos stop reaching b; b keeps talking, echoing a's last hello forever.
    went_down_at = None
    for i in range(10):
        a.next_hello(now)
        deliver(b, a, now + 0.002)
        if a.on_tick(now + 0.003):
            went_down_at = i
            break
        now += 0.02
    assert went_down_at is not None and went_down_at <= PARAMS.miss_threshold + 1
    assert a.state == LinkState.DOWN


def test_a_lost_hello_breaks_the_good_streak_even_when_the_next_is_on_time() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    now = bring_up(a, b, rounds=2)  # two good hellos each way: still on probation
    assert a.state == LinkState.PROBATION and a.good_in_row == 2
    b.next_hello(now)  # lost on the way
    deliver(a, b, now)
    a.on_tick(now + 0.008)  # 1.25 intervals since b's last hello: late, not yet lost
    assert a.good_in_row == 2
    deliver(b, a, now + PARAMS.probe_interval_s)  # on time, one hello missing before it
    assert a.good_in_row == 1
    assert a.state == LinkState.PROBATION


def test_a_link_back_from_an_outage_comes_up_at_its_measured_cost() -> None:
    a, b = LinkMonitor("b", PARAMS), LinkMonitor("a", PARAMS)
    now = bring_up(a, b)
    assert a.up and b.up
    # One second of silence both ways: both ends go down and count every hello lost.
    now += 1.0
    assert a.on_tick(now) and b.on_tick(now)
    assert a.dr < 0.01
    now = bring_up(a, b, now, rounds=6)
    # Up again after a probation in which every hello arrived: the outage's losses do
    # not inflate ETX (they made the link return at ~4x its cost and flap routes).
    assert a.up and b.up
    assert a.dr > 0.95 and b.dr > 0.95
    assert a.etx == pytest.approx(1.0, abs=0.1)
