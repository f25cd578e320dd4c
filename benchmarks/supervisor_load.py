"""The Supervisor under telemetry load while training runs: ingest rate and loop lag.

Producer actors ``ray.put`` columnar telemetry batches (two per object, as one
telemetry interval of a MeshNode or an eBPF agent) and send the refs to
the real Supervisor actor at a fixed offered rate (like MeshNode and EbpfAgent
do every telemetry interval, up to 8 acks outstanding; what the Supervisor
could not queue is counted as dropped).  Meanwhile the driver makes the
Supervisor run a CPU-heavy torch training step (a fixed 120 optimizer steps,
~0.4 s of a quiet core) every second and, at the same time, once a blocking
"router start" (all-pairs shortest paths of a 1,000-node mesh), all through
``Supervisor.run_job``.  The Supervisor samples its own event-loop lag with a
5 ms timer task (counting the ticks a stall swallowed, see
:mod:`x0tta6bl4.mapek.lag`).

Each design first runs the same jobs without telemetry ("alone", after a
warm-up that imports torch and the twin where the jobs run), then with it:
training steps per second alone and under load, side by side, show whether
the training still progresses while the loop stays on time.  CPU seconds of
the Supervisor, the producers and the training over the loaded window are
reported too (less disturbed by other load on the host than wall-clock figures).

Two designs in the same run, same code, same load:

* ``offload`` (ours): blocking jobs run in the Supervisor's long-lived job runner actors;
* ``inline`` (the earlier version's design, the baseline): training and the
  router start are called directly on the event loop.
"""

from __future__ import annotations

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import asyncio
import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import console, parse_args, process_cpu_s, report
from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray
from x0tta6bl4.actors.supervisor import spawn_supervisor
from x0tta6bl4.config import RaySettings, Settings
from x0tta6bl4.mesh.topology import generate
from x0tta6bl4.telemetry import TelemetryBatch

METRICS = ("up", "rtt_ms", "loss", "etx", "df", "dr")
ROWS = 256
"""Rows (interfaces or links) per batch."""
BATCHES = 2
"""Batches per ``ingest`` message, put as one object (a list), as a MeshNode or an eBPF
agent ships one telemetry interval."""
MAX_INFLIGHT = 8
"""``ingest`` calls a producer may have unanswered."""
TRAIN_ITERATIONS = 120
"""Optimizer steps in one training step (~0.4 s of one quiet core)."""
ROUTER_NODES = 1000


def train_step(iterations: int) -> float:
    """One training round: a small MLP fitted on random data for ``iterations`` optimizer
    steps; returns the CPU seconds it took (its own thread's)."""
    import torch

    cpu = time.thread_time()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(512, 128), torch.randn(512, 1)
    for _ in range(iterations):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return time.thread_time() - cpu


def warm_up() -> None:
    """Import what the jobs use where they run and train a little (a long-lived trainer
    has done so long ago)."""
    importlib.import_module("x0tta6bl4.twin")
    train_step(5)


def router_start(nodes: int) -> int:
    """What the earlier version's ``mesh_router.start()`` amounts to: routes for a whole
    mesh (all-pairs shortest paths of a ``nodes``-node mesh)."""
    from x0tta6bl4.twin import DigitalTwin

    twin = DigitalTwin(generate("waxman", nodes, seed=3))
    twin.prepare()
    return nodes


@ray.remote(num_cpus=0)
class Producer:
    """Sends telemetry batch refs to the Supervisor at a fixed rate (as a MeshNode does,
    without waiting for one ack before the next message)."""

    def __init__(self, supervisor: Any, rows: int, batches: int, seed: int) -> None:
        self.supervisor = supervisor
        rng = np.random.default_rng(seed)
        self.entities = [
            np.asarray([f"p{seed}-b{b}-if{i}" for i in range(rows)]) for b in range(batches)
        ]
        self.values = {m: rng.random(rows) for m in METRICS}
        self.sent = self.dropped = self.messages = 0

    def ready(self) -> bool:
        return True

    def cpu_s(self) -> float:
        return time.process_time()

    async def run(self, seconds: float, period_s: float) -> dict[str, int]:
        """One message every ``period_s`` for ``seconds``, up to 8 acks outstanding."""
        start = time.monotonic()
        end = start + seconds
        due = start
        pending: list[Any] = []
        while due < end:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += period_s
            if len(pending) >= MAX_INFLIGHT:
                self._count(await pending.pop(0))
            now = time.time()
            batches = [
                TelemetryBatch(f"bench:{id(self)}", "iface", np.full(len(e), now), e, self.values)
                for e in self.entities
            ]
            pending.append(self.supervisor.ingest.remote([ray.put(batches)]))
        for ack in await asyncio.gather(*pending):
            self._count(ack)
        return {"sent": self.sent, "dropped": self.dropped, "messages": self.messages}

    def _count(self, ack: dict[str, int]) -> None:
        """Acks count refs; each ref holds ``BATCHES`` batches."""
        self.messages += 1
        self.sent += ack["accepted"] * len(self.entities)
        self.dropped += ack["dropped"] * len(self.entities)


async def drive(supervisor: Any, seconds: float) -> dict[str, float]:
    """Blocking jobs through the Supervisor for ``seconds``: one router start and, at the
    same time, a training step every second (the inline design runs them one after the
    other on its loop).  Training steps done, per second, and their CPU seconds."""
    start = time.monotonic()
    end = start + seconds - 1.0
    router = asyncio.ensure_future(supervisor.run_job.remote(router_start, ROUTER_NODES))
    steps, cpu_s = 0, 0.0
    while time.monotonic() < end:
        started = time.monotonic()
        cpu_s += await supervisor.run_job.remote(train_step, TRAIN_ITERATIONS)
        steps += 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    await router
    return {"steps": steps, "steps_per_s": steps / seconds, "cpu_s": cpu_s}


async def measure(
    design: str, settings: Settings, producers: int, seconds: float, offered: float
) -> dict[str, float]:
    supervisor = spawn_supervisor(
        settings,
        namespace="x0-bench-supervisor",
        topology=generate("ring_chords", 32),
        design=design,  # type: ignore[arg-type]
        name=f"supervisor-{design}",
    )
    fleet = [Producer.remote(supervisor, ROWS, BATCHES, seed) for seed in range(producers)]
    period_s = producers * ROWS * BATCHES * len(METRICS) / offered
    await asyncio.gather(*(p.ready.remote() for p in fleet))  # processes up before timing
    await asyncio.gather(*(supervisor.run_job.remote(warm_up) for _ in range(2)))
    alone = await drive(supervisor, seconds)
    pid = (await supervisor.status.remote())["pid"]
    await supervisor.reset_stats.remote()
    cpu_before = process_cpu_s(pid), sum(await asyncio.gather(*(p.cpu_s.remote() for p in fleet)))
    started = time.time()
    jobs = asyncio.ensure_future(drive(supervisor, seconds))
    results = await asyncio.gather(*(p.run.remote(seconds, period_s) for p in fleet))
    status = await supervisor.status.remote()  # the window the producers ran in
    cpu_after = process_cpu_s(pid), sum(await asyncio.gather(*(p.cpu_s.remote() for p in fleet)))
    loaded = await jobs
    for actor in (*fleet, supervisor):
        ray.kill(actor)
    sent = sum(r["sent"] for r in results)
    dropped = sum(r["dropped"] for r in results)
    console.print(
        f"{design}: {status['ingest']['samples_per_s']:,.0f} samples/s, "
        f"lag p50 {status['loop_lag']['p50_ms']:.2f} ms p99 {status['loop_lag']['p99_ms']:.1f} ms, "
        f"training {alone['steps_per_s']:.2f} steps/s alone, {loaded['steps_per_s']:.2f} "
        f"under load, batches sent {sent} dropped {dropped}"
    )
    stalls = sorted(status["stalls"], key=lambda s: -s["lag_ms"])[:8]
    console.print(
        "  worst stalls (s into the window / lag / process CPU / loop thread on the run queue, "
        "ms): "
        + ", ".join(
            f"{s['at'] - started:.1f}/{s['lag_ms']:.0f}/{s['cpu_ms']:.0f}/"
            + ("?" if s["runq_ms"] is None else f"{s['runq_ms']:.0f}")
            for s in stalls
        )
    )
    return {
        "samples_per_s": status["ingest"]["samples_per_s"],
        "messages_per_s": status["ingest"]["messages_per_s"],
        "batches_per_s": status["ingest"]["batches"] / status["ingest"]["seconds"],
        "p50_ms": status["loop_lag"]["p50_ms"],
        "p99_ms": status["loop_lag"]["p99_ms"],
        "max_ms": status["loop_lag"]["max_ms"],
        "dropped_batches": dropped,
        "training_steps": loaded["steps"],
        "training_steps_per_s": loaded["steps_per_s"],
        "training_alone_steps_per_s": alone["steps_per_s"],
        "training_cpu_s": loaded["cpu_s"],
        "supervisor_cpu_s": cpu_after[0] - cpu_before[0],
        "producers_cpu_s": cpu_after[1] - cpu_before[1],
    }


def main() -> None:
    args = parse_args("supervisor_load", "Supervisor ingest and loop lag while training runs")
    producers, seconds, offered = (8, 10.0, 120_000.0) if args.quick else (16, 30.0, 200_000.0)
    data_dir = Path(tempfile.mkdtemp(prefix="x0-bench-supervisor-"))
    settings = Settings(
        data_dir=data_dir,
        supervisor={"interval_s": 1.0, "max_queued_batches": 512, "slow_tick_s": 5.0},
        log={"level": "error"},
    )
    load_before = os.getloadavg()[0]
    ensure_ray(RaySettings(dashboard=False, namespace="x0-bench-supervisor"))
    try:
        ours = asyncio.run(measure("offload", settings, producers, seconds, offered))
        base = asyncio.run(measure("inline", settings, producers, seconds, offered))
    finally:
        shutdown_ray()
    metrics = {
        "offered.samples_per_s": offered,
        "ingest.samples_per_s": ours["samples_per_s"],
        "ingest.messages_per_s": ours["messages_per_s"],
        "ingest.batches_per_s": ours["batches_per_s"],
        "loop_lag.p50_ms": ours["p50_ms"],
        "loop_lag.p99_ms": ours["p99_ms"],
        "loop_lag.max_ms": ours["max_ms"],
        "dropped_batches": ours["dropped_batches"],
        "training.steps": ours["training_steps"],
        "training.steps_per_s": ours["training_steps_per_s"],
        "training.alone.steps_per_s": ours["training_alone_steps_per_s"],
        "training.cpu_s": ours["training_cpu_s"],
        "cpu.supervisor_s": ours["supervisor_cpu_s"],
        "cpu.producers_s": ours["producers_cpu_s"],
        "baseline.ingest.samples_per_s": base["samples_per_s"],
        "baseline.ingest.messages_per_s": base["messages_per_s"],
        "baseline.loop_lag.p50_ms": base["p50_ms"],
        "baseline.loop_lag.p99_ms": base["p99_ms"],
        "baseline.dropped_batches": base["dropped_batches"],
        "baseline.training.steps": base["training_steps"],
        "baseline.training.steps_per_s": base["training_steps_per_s"],
        "baseline.training.alone.steps_per_s": base["training_alone_steps_per_s"],
        "baseline.cpu.supervisor_s": base["supervisor_cpu_s"],
        "ratio.loop_lag_p99": base["p99_ms"] / max(ours["p99_ms"], 1e-6),
        "ratio.ingest_samples": ours["samples_per_s"] / max(base["samples_per_s"], 1e-6),
    }
    notes = {
        "load": f"{producers} producer actors offering {offered:,.0f} samples/s in messages "
        f"of one object of {BATCHES} batches x {ROWS} rows x {len(METRICS)} metrics, "
        f"{seconds:g} s per design; "
        f"a training step of {TRAIN_ITERATIONS} optimizer steps every 1 s and, at the same "
        f"time, one {ROUTER_NODES:,}-node router start, all via Supervisor.run_job, first "
        "without telemetry (training.alone) then with it; loop lag counts the timer ticks a "
        "stall swallowed; CPU seconds over the loaded window",
        "baseline": "design=inline: the same Supervisor with those jobs called on its event "
        "loop (the earlier version's design)",
        "host": f"{os.cpu_count()} cores shared by the producers, Ray, the jobs and anything "
        f"else running on the machine; 1-min load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end",
    }
    report("supervisor_load", args, metrics, notes)


if __name__ == "__main__":
    main()
