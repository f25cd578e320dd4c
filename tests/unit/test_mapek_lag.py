"""The lag probe sees a loop that is held."""

from __future__ import annotations

import asyncio
import time

import pytest

from x0tta6bl4.mapek.lag import LagProbe


async def test_a_blocking_call_shows_up_as_lag() -> None:
    probe = LagProbe(interval_s=0.002)
    task = asyncio.create_task(probe.run())
    while len(probe.samples) < 5:
        await asyncio.sleep(0.002)
    quiet = probe.summary()
    time.sleep(0.06)  # deliberately hold the loop, as a blocking call would
    while len(probe.samples) < quiet["samples"] + 3:
        await asyncio.sleep(0.002)
    task.cancel()
    held = probe.summary()
    assert held["max_ms"] >= 50  # the sample spanning the 60 ms block
    assert held["samples"] > quiet["samples"]
    probe.reset()
    assert probe.summary()["samples"] == 0


def test_a_long_stall_counts_for_the_timers_it_swallowed() -> None:
    probe = LagProbe(interval_s=0.005)
    for _ in range(990):
        probe.record(0.0001)
    probe.record(1.0)  # one wake-up after a 1 s block: 200 timers should have fired
    summary = probe.summary()
    assert summary["samples"] == 990 + 201
    assert summary["max_ms"] == 1000.0
    # Without the missed timers this p99 would be 0.1 ms: the block is 17% of the time.
    assert summary["p99_ms"] > 900
    assert sorted(probe.samples)[-2] == pytest.approx(0.995)
