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

Wake-ups later than ``stall_s`` are also kept as :class:`Stall` records: when,
how late, how much CPU the process used meanwhile, and (Linux) how long the
loop's thread sat runnable waiting for a CPU.  A stall spent on the run queue
is the OS not running the process; one with the process busy is something in
it holding the loop (a callback, GC, the GIL); one with neither is the loop
thread blocked (a lock, a system call).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from typing import NamedTuple

import numpy as np

__all__ = ["LagProbe", "Stall"]


class Stall(NamedTuple):
    """One wake-up later than the probe's ``stall_s``."""

    at: float
    """Wall-clock time (``time.time()``) of the late wake-up."""
    lag_ms: float
    cpu_ms: float
    """CPU time the whole process used between the timer's start and the wake-up."""
    runq_ms: float | None
    """Time the loop's thread waited for a CPU meanwhile (None where not known)."""


def _runq_s(fd: int | None) -> float | None:
    """Seconds the thread whose ``schedstat`` is open at ``fd`` has waited for a CPU."""
    if fd is not None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(os.pread(fd, 64, 0).split()[1]) / 1e9
    return None


class LagProbe:
    """Samples the lag of the running event loop.

    Args:
        interval_s: the timer period.
        keep: samples kept (the newest); 10,000 at 5 ms is the last ~50 s.
        stall_s: wake-ups at least this late are also kept as :class:`Stall` (newest 100).
    """

    def __init__(
        self, interval_s: float = 0.005, keep: int = 10_000, stall_s: float = 0.010
    ) -> None:
        self.interval_s = interval_s
        self.stall_s = stall_s
        self.samples: deque[float] = deque(maxlen=keep)
        self.stalls: deque[Stall] = deque(maxlen=100)

    async def run(self) -> None:
        """Sample until cancelled."""
        clock, cpu = time.perf_counter, time.process_time
        fd = None
        with contextlib.suppress(OSError):  # not Linux: stalls without run-queue times
            fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        try:
            cpu_then, runq_then = cpu(), _runq_s(fd)
            while True:
                asked = clock()
                await asyncio.sleep(self.interval_s)
                lag_s = clock() - asked - self.interval_s
                self.record(lag_s)
                cpu_now, runq_now = cpu(), _runq_s(fd)
                if lag_s >= self.stall_s:
                    waited = None
                    if runq_now is not None and runq_then is not None:
                        waited = (runq_now - runq_then) * 1e3
                    self.stalls.append(
                        Stall(time.time(), lag_s * 1e3, (cpu_now - cpu_then) * 1e3, waited)
                    )
                cpu_then, runq_then = cpu_now, runq_now
        finally:
            if fd is not None:
                os.close(fd)

    def record(self, lag_s: float) -> None:
        """One wake-up ``lag_s`` late, and the timers the stall swallowed."""
        lag_s = max(0.0, lag_s)
        missed = int(lag_s / self.interval_s)
        if missed:
            self.samples.extend(lag_s - self.interval_s * np.arange(1, missed + 1))
        self.samples.append(lag_s)

    def reset(self) -> None:
        self.samples.clear()
        self.stalls.clear()

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
