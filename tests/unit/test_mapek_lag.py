"""The lag probe sees a loop that is held."""

from __future__ import annotations

import asyncio
import time

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
