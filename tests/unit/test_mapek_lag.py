"""The lag probe sees a loop that is held."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from tests.helpers import async_wait_for
from x0tta6bl4.mapek.lag import LagProbe, Stall


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


async def test_a_stall_says_whether_the_process_was_busy_or_waiting() -> None:
    probe = LagProbe(interval_s=0.002, stall_s=0.03)
    task = asyncio.create_task(probe.run())
    while len(probe.samples) < 5:
        await asyncio.sleep(0.002)

    def stall_after(at: float) -> Callable[[], Awaitable[Stall | None]]:
        async def found() -> Stall | None:  # a loaded host adds stalls of its own
            return next((s for s in probe.stalls if s.at > at and s.lag_ms >= 70), None)

        return found

    started = time.time()
    end = time.process_time() + 0.08
    while time.process_time() < end:  # the loop held by work: the process is busy
        pass
    busy = await async_wait_for(stall_after(started), timeout_s=5, message="the busy stall")
    time.sleep(0.08)  # the loop thread blocked: no CPU, not waiting for one either
    blocked = await async_wait_for(stall_after(busy.at), timeout_s=5, message="the blocked one")
    task.cancel()
    assert busy.cpu_ms >= 60, busy
    assert blocked.cpu_ms < 20, blocked
    assert blocked.runq_ms is not None and blocked.lag_ms - blocked.runq_ms >= 60, blocked
