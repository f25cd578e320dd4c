"""Event-loop lag: how late a timer on the loop fires, sampled continuously.

A coroutine sleeps ``interval_s`` over and over and records how much later
than asked it woke up.  Anything that holds the loop (a blocking call, a long
computation) shows up as lag; the Supervisor reports its p50/p99.

A timer held for a long stall wakes once, so a plain sample list would count
a 3 s block as one sample among thousands.  Each wake-up therefore also
records the timers that should have fired during the stall, each with the
lag it would have seen (``lag - k * interval_s``, the coordinated-omission
correction of HdrHistogram): the percentiles are over time, i.e. the lag a
message arriving at a random moment meets.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import numpy as np

__all__ = ["LagProbe"]


class LagProbe:
    """Samples the lag of the running event loop.

    Args:
        interval_s: the timer period.
        keep: samples kept (the newest); 10,000 at 5 ms is the last ~50 s.
    """

    def __init__(self, interval_s: float = 0.005, keep: int = 10_000) -> None:
        self.interval_s = interval_s
        self.samples: deque[float] = deque(maxlen=keep)

    async def run(self) -> None:
        """Sample until cancelled."""
        clock = time.perf_counter
        while True:
            asked = clock()
            await asyncio.sleep(self.interval_s)
            self.record(clock() - asked - self.interval_s)

    def record(self, lag_s: float) -> None:
        """One wake-up ``lag_s`` late, and the timers the stall swallowed."""
        lag_s = max(0.0, lag_s)
        missed = int(lag_s / self.interval_s)
        if missed:
            self.samples.extend(lag_s - self.interval_s * np.arange(1, missed + 1))
        self.samples.append(lag_s)

    def reset(self) -> None:
        self.samples.clear()

    def summary(self) -> dict[str, float]:
        """``p50_ms``, ``p99_ms``, ``max_ms`` and the sample count."""
        if not self.samples:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}
        ms = np.asarray(self.samples) * 1e3
        return {
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max()),
            "samples": len(ms),
        }
