"""Adaptive baselines learn each metric's normal and are not dragged along by faults."""

from __future__ import annotations

import numpy as np
import pytest

from x0tta6bl4.mapek.baselines import BaselineRecord, Baselines


def _feed(b: Baselines, values, entities=("a-b",), metrics=("rtt_ms",)):
    return b.judge(
        "link", list(entities), list(metrics), np.array(values, dtype=float).reshape(1, -1)
    )


def test_warmup_then_judges_against_learned_level_and_spread() -> None:
    b = Baselines(warmup=5)
    rng = np.random.default_rng(0)
    for i in range(5):
        _, _, z = _feed(b, [10 + rng.normal(0, 1)])
        assert np.isnan(z).all(), f"judged during warm-up at window {i}"
    for _ in range(30):
        _feed(b, [10 + rng.normal(0, 1)])
    baseline, scale, z = _feed(b, [30.0])
    assert baseline[0, 0] == pytest.approx(10, abs=1)
    assert 0.5 < scale[0, 0] < 2.5
    assert z[0, 0] > 8


def test_floor_keeps_a_constant_metric_from_crying_wolf() -> None:
    b = Baselines(warmup=3)
    for _ in range(10):
        _feed(b, [0.0], metrics=("loss",))
    _, scale, z = _feed(b, [0.005], metrics=("loss",))
    assert scale[0, 0] == pytest.approx(0.01)  # the loss floor
    assert z[0, 0] == pytest.approx(0.5)
    _, _, z = _feed(b, [0.3], metrics=("loss",))
    assert z[0, 0] > 6


def test_a_fault_does_not_drag_the_baseline_but_a_lasting_change_is_learned() -> None:
    b = Baselines(warmup=3, freeze_z=6.0, drift=0.01)
    for _ in range(20):
        _feed(b, [0.0], metrics=("loss",))
    for _ in range(30):
        baseline, _, z = _feed(b, [0.4], metrics=("loss",))
    assert baseline[0, 0] < 0.15 and z[0, 0] > 6, "30 faulty windows must still look anomalous"
    for _ in range(400):
        _, _, z = _feed(b, [0.4], metrics=("loss",))
    assert z[0, 0] < 6, "a level held for hundreds of windows becomes the new normal"


def test_records_round_trip_and_seed_new_instances() -> None:
    b = Baselines(warmup=2)
    for v in (5.0, 5.0, 5.0):
        _feed(b, [v, 1.0], metrics=("rtt_ms", "up"))
    records = {(r.entity, r.metric): r for r in b.records()}
    assert records[("a-b", "rtt_ms")].mean == pytest.approx(5.0)
    assert records[("a-b", "up")].n == 3
    fresh = Baselines(warmup=2)
    fresh.load([*records.values(), BaselineRecord("link", "c-d", "rtt_ms", 7.0, 0.1, 9)])
    _, _, z = _feed(fresh, [50.0], metrics=("rtt_ms",))
    assert z[0, 0] > 6, "a reloaded baseline judges at once, without a new warm-up"
    assert {r.entity for r in fresh.records()} == {"a-b", "c-d"}
