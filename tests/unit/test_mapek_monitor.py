"""The Monitor turns windows into symptoms and a view of the mesh (fake clock)."""

from __future__ import annotations

import pytest

from x0tta6bl4.mapek.baselines import Baselines
from x0tta6bl4.mapek.ingest import WindowAggregator
from x0tta6bl4.mapek.monitor import Monitor
from x0tta6bl4.telemetry import BatchBuilder


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _window(agg, clock, links, nodes):
    lb = BatchBuilder("t", "link", ("up", "loss"))
    for entity, up, loss in links:
        lb.add(clock.t, entity, (up, loss))
    agg.add(lb.build())
    if nodes:
        nb = BatchBuilder("t", "node", ("links_up", "rejected"))
        for entity, links_up, rejected in nodes:
            nb.add(clock.t, entity, (links_up, rejected))
        agg.add(nb.build())
    return agg.close(clock.t)


@pytest.fixture
def setup():
    clock = FakeClock()
    monitor = Monitor(clock, Baselines(warmup=3), z_threshold=6.0, stale_after_s=3.0)
    return clock, WindowAggregator(clock.t), monitor


def _steady(clock, agg, monitor, windows=6, rejected=0.0):
    for _ in range(windows):
        clock.t += 1
        report = monitor.observe(
            _window(
                agg,
                clock,
                [("a-b", 1.0, 0.0), ("b-c", 1.0, 0.0)],
                [("a", 1, rejected), ("b", 2, rejected), ("c", 1, rejected)],
            )
        )
        assert report.symptoms == []
    return report


def test_quiet_mesh_has_no_symptoms_and_everything_up(setup) -> None:
    clock, agg, monitor = setup
    report = _steady(clock, agg, monitor)
    assert report.view.down_links == frozenset() and report.view.down_nodes == frozenset()


def test_link_down_is_a_symptom_and_down_in_the_view(setup) -> None:
    clock, agg, monitor = setup
    _steady(clock, agg, monitor)
    clock.t += 1
    report = monitor.observe(
        _window(
            agg,
            clock,
            [("a-b", 0.0, 1.0), ("b-c", 1.0, 0.0)],
            [("a", 0, 0), ("b", 1, 0), ("c", 1, 0)],
        )
    )
    by_metric = {(s.entity, s.metric): s for s in report.symptoms}
    assert by_metric[("a-b", "up")].score >= 6  # a drop of `up` is the bad direction
    assert by_metric[("a-b", "loss")].value == 1.0
    assert report.view.down_links == {"a-b"}
    assert "a-b" in report.view.degraded_links


def test_silent_node_after_stale_time(setup) -> None:
    clock, agg, monitor = setup
    _steady(clock, agg, monitor)
    for _ in range(4):
        clock.t += 1
        report = monitor.observe(
            _window(agg, clock, [("a-b", 1.0, 0.0), ("b-c", 1.0, 0.0)], [("a", 1, 0), ("b", 2, 0)])
        )
    silent = [s for s in report.symptoms if s.metric == "silent"]
    assert [s.entity for s in silent] == ["c"] and silent[0].value == pytest.approx(4.0)
    assert report.view.down_nodes == {"c"}


def test_counters_are_judged_by_their_rise(setup) -> None:
    clock, agg, monitor = setup
    total = 0.0
    for _ in range(6):  # a counter that grows steadily by 1 per window is normal
        total += 1
        clock.t += 1
        report = monitor.observe(
            _window(agg, clock, [("a-b", 1, 0)], [("a", 1, total), ("b", 1, total)])
        )
        assert report.symptoms == []
    total += 50
    clock.t += 1
    report = monitor.observe(_window(agg, clock, [("a-b", 1, 0)], [("a", 1, total), ("b", 1, 1)]))
    rejected = [s for s in report.symptoms if s.metric == "rejected"]
    assert [s.entity for s in rejected] == ["a"] and rejected[0].value == 50
    assert report.view.degraded_nodes == {"a"}


def test_history_frame_for_the_trainer(setup) -> None:
    clock, agg, monitor = setup
    _steady(clock, agg, monitor, windows=4)
    frame = monitor.frame()
    assert len(frame) == 4
    assert {"a-b:up", "a-b:loss", "a:links_up"} <= set(frame.columns)
    assert frame.index.is_monotonic_increasing
