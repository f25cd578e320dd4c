"""Blocking jobs the Supervisor offloads: a small pool of long-lived runner actors.

A job (a training run, a router start) must not run on the Supervisor's event
loop.  It goes to a :class:`JobRunner` actor instead: its own process, kept
between jobs, so what a job imports (torch, scipy) is imported once.  Plain
Ray tasks would do the same work but not keep the process: Ray kills idle task
workers beyond its soft limit (the host's CPU count), and on a host with more
actors than cores a training step could land in a fresh worker and spend
seconds importing torch again (the load benchmark measured 1 step in 10 s that
way).

Runners run at niceness :data:`JOB_NICENESS`: scheduled after the Supervisor's
control loop (-10) and before Ray's workers (15: MeshNodes, producers), so on a
busy host the loop runs first and the training still gets its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from typing import Any

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers

__all__ = ["JOB_NICENESS", "JobPool", "JobRunner", "renice_process"]

log = loggers.supervisor

JOB_NICENESS = 5
"""Niceness of a runner's process (every thread)."""


def renice_process(niceness: int) -> int | None:
    """Set every thread of this process (Linux nices per thread; threads started later
    inherit their creator's) to ``niceness``; returns it, or None where not allowed."""
    try:
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), niceness)
    except OSError as exc:  # not Linux, or no CAP_SYS_NICE for a lower value
        log.warning("niceness_unchanged", niceness=niceness, error=str(exc))
        return None
    return niceness


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class JobRunner:
    """One long-lived process that runs one blocking job at a time."""

    def __init__(self) -> None:
        self.niceness = renice_process(JOB_NICENESS)

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        return fn(*args)


class JobPool:
    """Up to ``size`` :class:`JobRunner` actors, started on first use; a job waits for an
    idle runner, so at most ``size`` jobs compete with everything else for the CPU.

    Used from one event loop (the Supervisor's).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._runners: list[ActorHandle[Any]] = []
        self._idle: asyncio.Queue[ActorHandle[Any]] = asyncio.Queue()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a runner's process; its exception comes back as Ray's
        ``RayTaskError`` (a subclass of the original's type)."""
        if self._idle.empty() and len(self._runners) < self.size:
            runner: ActorHandle[Any] = JobRunner.remote()  # type: ignore[attr-defined]
            self._runners.append(runner)
        else:
            runner = await self._idle.get()
        try:
            return await runner.run.remote(fn, args)
        finally:
            self._idle.put_nowait(runner)

    @property
    def started(self) -> int:
        return len(self._runners)

    def stop(self) -> None:
        """Kill the runners (idempotent); jobs in flight fail."""
        for runner in self._runners:
            with contextlib.suppress(ray.exceptions.RayError):
                ray.kill(runner, no_restart=True)
        self._runners.clear()
        self._idle = asyncio.Queue()
