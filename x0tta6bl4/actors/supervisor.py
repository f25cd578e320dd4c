"""``supervisor``: the MAPE-K Supervisor actor (async, named, detached, restartable).

A thin Ray wrapper over :mod:`x0tta6bl4.mapek`.  Producers call
``ingest(refs)`` with lists of refs to :class:`~x0tta6bl4.telemetry.TelemetryBatch`
objects they ``ray.put``; the call only queues the refs (bounded) and answers
an :class:`~x0tta6bl4.mapek.ingest.IngestAck` as a dict.  Three tasks share
the event loop: one reads queued batches and folds them into the window, one
runs a MAPE-K tick every ``supervisor.interval_s``, one samples the loop's own
lag.  Nothing blocking runs on the loop: SQLite on Knowledge's thread, the
digital twin in the ``twin`` actor, analysis in the ``trainer`` actor, other
blocking jobs (:meth:`Supervisor.run_job`) in long-lived runner actors
(:mod:`x0tta6bl4.actors.jobs`).

Ray restarts the actor after a crash (``max_restarts=-1``); the new one
reopens the same Knowledge file, so incidents, baselines and unfinished
actions carry over (see :class:`~x0tta6bl4.mapek.loop.MapekLoop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pandas as pd
import ray
from ray.actor import ActorHandle
from ray.util.metrics import Counter, Gauge, Histogram

from x0tta6bl4 import loggers
from x0tta6bl4.actors.jobs import JobPool, renice_process
from x0tta6bl4.actors.twin import RemoteTwin, spawn_twin
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError, TelemetryError
from x0tta6bl4.mapek import (
    ActionKind,
    Analyzer,
    AsyncKnowledge,
    StatisticalAnalyzer,
    TrainerAnalyzer,
)
from x0tta6bl4.mapek._types import Action
from x0tta6bl4.mapek.assemble import build_loop, knowledge_path
from x0tta6bl4.mapek.ingest import TelemetryQueue
from x0tta6bl4.mapek.lag import LagProbe
from x0tta6bl4.mapek.loop import MapekLoop
from x0tta6bl4.mapek.ports import (
    SUPERVISOR_REASON,
    PathObservation,
    StandingOrders,
    follow_routes,
    require_link_ends,
)
from x0tta6bl4.mesh.topology import Topology, generate
from x0tta6bl4.telemetry import unpack

__all__ = ["SUPERVISOR_NAME", "ActorMeshPort", "Design", "Supervisor", "spawn_supervisor"]

log = loggers.supervisor

SUPERVISOR_NAME = "supervisor"
Design = Literal["offload", "inline"]
"""Where :meth:`Supervisor.run_job` runs blocking work: ``offload`` (a runner actor,
another process) or ``inline`` (on the event loop: the earlier version's design,
kept only so the load benchmark can measure it side by side)."""
_DRAIN_BATCH = 64
_GIL_SWITCH_S = 0.001
_CALL_TIMEOUT_S = 5.0


class _Metrics:
    """The Supervisor's series on the Ray dashboard and Prometheus (prefixed ``ray_``)."""

    def __init__(self) -> None:
        self.phase = Histogram(
            "x0_supervisor_phase_seconds",
            "duration of a MAPE-K phase",
            boundaries=[0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
            tag_keys=("phase",),
        )
        self.phase_failures = Counter(
            "x0_supervisor_phase_failures", "MAPE-K phases that raised", tag_keys=("phase",)
        )
        self.lag = Gauge("x0_supervisor_loop_lag_ms", "event-loop lag", tag_keys=("quantile",))
        self.batches = Counter("x0_supervisor_batches", "telemetry batches", tag_keys=("fate",))
        self.samples = Counter("x0_supervisor_samples", "telemetry samples aggregated")
        self.queued = Gauge("x0_supervisor_queued_batches", "batch refs waiting")

    def on_phase(self, phase: str, seconds: float, failed: bool) -> None:
        self.phase.observe(seconds, tags={"phase": phase})
        if failed:
            self.phase_failures.inc(1, tags={"phase": phase})


class ActorMeshPort:
    """The mesh as MeshNode actors (named ``mesh-<run>-<node>`` in the namespace).

    Raise-cost sets the link's cost (configured cost x factor) at both ends,
    route-around drains it (``math.inf``: advertised at the mesh's drain cost,
    used only where nothing else reaches); isolation asks every node to stop
    routing through the target; a restart kills the target's actor and Ray
    starts it again (it adopts its routes).  A restarted MeshNode forgets its
    cost overrides, so every :meth:`flagged` pass (once a tick) sets again the
    ones a node no longer reports.  Paths are followed hop by hop through the
    routes the actors report.
    """

    supports = frozenset(
        {
            ActionKind.RAISE_COST,
            ActionKind.ROUTE_AROUND_LINK,
            ActionKind.ISOLATE_NODE,
            ActionKind.RESTART_NODE,
        }
    )

    def __init__(self, topology: Topology, namespace: str) -> None:
        self.topology = topology
        self.names = set(topology.names)
        self.namespace = namespace
        self._handles: dict[str, ActorHandle[Any]] = {}
        self._looked_at = -1e9
        self.standing = StandingOrders()

    async def _nodes(self) -> dict[str, ActorHandle[Any]]:
        if time.monotonic() - self._looked_at > _CALL_TIMEOUT_S:
            self._looked_at = time.monotonic()
            self._handles = await asyncio.to_thread(self._lookup)
        return self._handles

    def _lookup(self) -> dict[str, ActorHandle[Any]]:
        found = {}
        for row in ray.util.list_named_actors(all_namespaces=True):
            name = row["name"]
            if row["namespace"] != self.namespace or not name.startswith("mesh-"):
                continue
            node = name.rsplit("-", 1)[-1]
            if node in self.names:
                found[node] = ray.get_actor(name, namespace=self.namespace)
        return found

    async def apply(self, action: Action) -> None:
        nodes = await self._nodes()
        if action.kind is ActionKind.ISOLATE_NODE:
            self.standing.isolated.add(action.target)
            calls = [
                h.isolate.remote(action.target, SUPERVISOR_REASON)
                for name, h in nodes.items()
                if name != action.target
            ]
            await asyncio.wait_for(asyncio.gather(*calls), _CALL_TIMEOUT_S)
        elif action.kind in (ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK):
            link = self.topology.link(*require_link_ends(action.target, self.topology.names))
            cost = (
                math.inf
                if action.kind is ActionKind.ROUTE_AROUND_LINK
                else link.cost * action.factor
            )
            ends = [(a, b) for a, b in (link.ends, link.ends[::-1]) if a in nodes]
            if not ends:  # the larger of both ends' claims counts: one end is enough
                raise ClusterError(f"no MeshNode actor at either end of {action.target}")
            for a, b in ends:
                self.standing.costs[a, b] = cost
            await self._set_costs(nodes, ends)
        elif action.kind is ActionKind.RESTART_NODE:
            handle = nodes.get(action.target)
            if handle is None:
                raise ClusterError(f"no MeshNode actor for {action.target}")
            await asyncio.to_thread(ray.kill, handle, no_restart=False)
        else:
            raise ClusterError(
                f"MeshNode actors cannot {action.describe()}",
                fix="the planner only proposes supported actions; this is a bug",
            )

    async def _set_costs(
        self, nodes: dict[str, ActorHandle[Any]], ends: Sequence[tuple[str, str]]
    ) -> None:
        calls = [nodes[a].set_link_cost.remote(b, self.standing.costs[a, b]) for a, b in ends]
        await asyncio.wait_for(asyncio.gather(*calls), _CALL_TIMEOUT_S)

    async def _reapply(self, snaps: dict[str, Any]) -> None:
        """Set again the costs and isolations a (restarted) MeshNode no longer reports."""
        costs = self.standing.lost_costs(snaps)
        isolations = self.standing.lost_isolations(snaps)
        if not costs and not isolations:
            return
        nodes = await self._nodes()
        if costs:
            log.info("link_costs_reapplied", ends=[f"{a}->{b}" for a, b in costs])
            await self._set_costs(nodes, costs)
        if isolations:
            log.info("isolations_reapplied", at=[f"{a}:{b}" for a, b in isolations])
            calls = [nodes[a].isolate.remote(b, SUPERVISOR_REASON) for a, b in isolations]
            await asyncio.wait_for(asyncio.gather(*calls), _CALL_TIMEOUT_S)

    async def _snapshots(self) -> dict[str, Any]:
        nodes = await self._nodes()
        refs: dict[str, ray.ObjectRef[Any]] = {n: h.snapshot.remote() for n, h in nodes.items()}
        done = await asyncio.gather(
            *(asyncio.wait_for(r, _CALL_TIMEOUT_S) for r in refs.values()),
            return_exceptions=True,
        )
        return {
            name: snap
            for name, snap in zip(refs, done, strict=True)
            if not isinstance(snap, BaseException)
        }

    async def flagged(self) -> dict[str, set[str]]:
        snaps = await self._snapshots()
        await self._reapply(snaps)
        out: dict[str, set[str]] = {}
        for name, snap in snaps.items():
            for suspect, reasons in snap.flagged.items():
                if reasons != [SUPERVISOR_REASON] and suspect != name:
                    out.setdefault(suspect, set()).add(name)
        return out

    async def observe(self, pairs: Sequence[tuple[str, str]]) -> list[PathObservation]:
        snaps = await self._snapshots()
        routes = {name: snap.routes for name, snap in snaps.items()}
        up_ends: dict[str, int] = {}
        for name, snap in snaps.items():
            for link in snap.links:
                if link.state.value == "up":
                    key = "-".join(sorted((name, link.neighbor)))
                    up_ends[key] = up_ends.get(key, 0) + 1
        usable = {key for key, ends in up_ends.items() if ends == 2}
        return [follow_routes(routes, a, b, set(snaps), usable) for a, b in pairs]


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Supervisor:
    """The MAPE-K Supervisor (see the module doc).

    Args:
        settings: the whole configuration (``supervisor``, ``mesh``, ``data_dir``).
        topology: the mesh as a topology dict; None generates it from ``mesh``.
        design: see :data:`Design`.
    """

    def __init__(
        self, settings: Settings, topology: dict[str, Any] | None = None, design: Design = "offload"
    ) -> None:
        loggers.configure_logging("json", settings.log.level)
        # Batches are folded on a worker thread; a 1 ms GIL switch interval (default 5)
        # hands the event loop the interpreter back sooner when it has work.
        sys.setswitchinterval(_GIL_SWITCH_S)
        self.niceness = renice_process(settings.supervisor.niceness)
        self.settings = settings
        mesh = settings.mesh
        self.topology = (
            Topology.from_dict(topology)
            if topology is not None
            else generate(mesh.topology, mesh.nodes, seed=mesh.seed)
        )
        self.design = design
        self.jobs = JobPool(settings.supervisor.job_runners)
        self.namespace = ray.get_runtime_context().namespace
        self.queue: TelemetryQueue[ray.ObjectRef[Any]] = TelemetryQueue(
            settings.supervisor.max_queued_batches
        )
        self.lag = LagProbe()
        self.metrics = _Metrics()
        self.knowledge = AsyncKnowledge(knowledge_path(settings))
        self.samples = 0
        self.batches = 0
        self.bad_batches = 0
        self._since = time.monotonic()
        self._trainer: ActorHandle[Any] | None = None
        self._trainer_looked_at = -1e9
        self._tasks: list[asyncio.Task[None]] = []
        self.loop: MapekLoop | None = None
        self._boot = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        await self.knowledge.open()
        s = self.settings.supervisor
        twin = spawn_twin(self.topology, s.twin_max_nodes, self.namespace)
        statistical = StatisticalAnalyzer(self.topology, s.z_threshold)
        analyzer: Analyzer = statistical
        if s.analyzer != "statistical":
            analyzer = TrainerAnalyzer(self._infer, lambda: self._frame(), statistical)
        self.loop = build_loop(
            self.topology,
            s,
            clock=time.time,
            port=ActorMeshPort(self.topology, self.namespace),
            knowledge=self.knowledge,
            twin=RemoteTwin(twin),
            analyzer=analyzer,
            on_phase=self.metrics.on_phase,
        )
        await self.loop.start()
        spawn = asyncio.get_running_loop().create_task
        self._tasks = [spawn(self._drain()), spawn(self._ticker()), spawn(self.lag.run())]
        log.info(
            "supervisor_started",
            pid=os.getpid(),
            nodes=len(self.topology),
            knowledge=str(knowledge_path(self.settings)),
            design=self.design,
        )

    def _frame(self) -> pd.DataFrame:
        return self.loop.monitor.frame() if self.loop is not None else pd.DataFrame()

    async def _infer(
        self, frame: pd.DataFrame, edges: list[tuple[str, str]], start: float | None
    ) -> dict[str, Any] | None:
        """Ask the ``trainer`` actor; None when it does not run."""
        if self._trainer is None and time.monotonic() - self._trainer_looked_at > 30:
            self._trainer_looked_at = time.monotonic()
            with contextlib.suppress(ValueError):
                self._trainer = await asyncio.to_thread(
                    ray.get_actor, "trainer", namespace=self.namespace
                )
        if self._trainer is None:
            return None
        answer: dict[str, Any] = await self._trainer.infer.remote(frame, edges, start)
        return answer

    # --- calls ---------------------------------------------------------------------

    async def ready(self) -> dict[str, Any]:
        """Waits until the Supervisor runs (start-up errors come back here)."""
        await asyncio.shield(self._boot)
        return await self.status()

    async def ingest(self, refs: list[ray.ObjectRef[Any]]) -> dict[str, int]:
        """Queue refs to telemetry batches; never blocks, never raises for overflow.

        Returns an :class:`IngestAck` dict; ``IngestAck.from_dict(ack).raise_for_drops()``
        turns dropped batches into :class:`~x0tta6bl4.errors.BackPressureError`.
        """
        if not isinstance(refs, list):
            raise TelemetryError(
                f"ingest takes a list of object refs, got {type(refs).__name__}",
                fix="ray.put each TelemetryBatch and send the list of refs",
            )
        ack = self.queue.put(refs)
        if ack.dropped:
            self.metrics.batches.inc(ack.dropped, tags={"fate": "dropped"})
        return ack.to_dict()

    async def run_job(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking work (a training run, a router start) per :data:`Design`."""
        if self.design == "inline":
            return fn(*args)
        return await self.jobs.run(fn, *args)

    async def status(self) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self._since)
        lag = self.lag.summary()
        for q in ("p50_ms", "p99_ms"):
            self.metrics.lag.set(lag[q], tags={"quantile": q})
        return {
            "pid": os.getpid(),
            "design": self.design,
            "niceness": self.niceness,
            "nodes": len(self.topology),
            "queue": self.queue.stats(),
            "ingest": {
                "samples": self.samples,
                "batches": self.batches,
                "bad_batches": self.bad_batches,
                "samples_per_s": self.samples / elapsed,
                "messages_per_s": self.queue.messages / elapsed,
                "seconds": elapsed,
            },
            "loop_lag": lag,
            "stalls": [stall._asdict() for stall in self.lag.stalls],
            "mapek": self.loop.summary() if self.loop else {},
            "knowledge": await self.knowledge.call(lambda k: k.counts()),
        }

    async def reset_stats(self) -> None:
        """Start the ingest and lag figures afresh (benchmarks measure a window)."""
        self.samples = self.batches = self.bad_batches = 0
        self.queue.messages = self.queue.accepted = self.queue.dropped = 0
        self._since = time.monotonic()
        self.lag.reset()

    async def stop(self) -> None:
        for task in (*self._tasks, self._boot):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.jobs.stop()
        await self.knowledge.close()

    # --- background tasks ------------------------------------------------------------

    async def _drain(self) -> None:
        """Hand queued refs to the fold thread: reading batches from the object store
        and folding them is CPU work the event loop should not do."""
        while True:
            await self.queue.wait()
            refs = self.queue.take(_DRAIN_BATCH)
            self.metrics.queued.set(len(self.queue))
            samples, good, bad = await asyncio.to_thread(self._fold, refs)
            self.samples += samples
            self.batches += good
            self.bad_batches += bad
            if samples:
                self.metrics.samples.inc(samples)
            self.metrics.batches.inc(len(refs), tags={"fate": "read"})

    def _fold(self, refs: list[ray.ObjectRef[Any]]) -> tuple[int, int, int]:
        """(samples, good batches, bad batches) of reading and aggregating ``refs``."""
        if self.loop is None:
            return 0, 0, len(refs)
        samples = good = bad = 0
        for ref in refs:
            try:
                try:
                    batch = ray.get(ref, timeout=_CALL_TIMEOUT_S)
                except (ray.exceptions.RayError, TimeoutError) as exc:
                    raise TelemetryError(f"a telemetry batch could not be read: {exc}") from exc
                for one in unpack(batch):
                    samples += self.loop.aggregator.add(one)
                    good += 1
            except TelemetryError as exc:
                bad += 1
                log.warning("bad_batch", error=str(exc))
        return samples, good, bad

    async def _ticker(self) -> None:
        assert self.loop is not None
        interval = self.settings.supervisor.interval_s
        while True:
            started = time.monotonic()
            await self.loop.tick()
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))


def spawn_supervisor(
    settings: Settings,
    *,
    namespace: str | None = None,
    topology: Topology | None = None,
    design: Design = "offload",
    name: str = SUPERVISOR_NAME,
) -> ActorHandle[Any]:
    """Start the detached, named Supervisor (or return the running one) and wait for it."""
    options: dict[str, Any] = {"name": name, "lifetime": "detached", "get_if_exists": True}
    if namespace is not None:
        options["namespace"] = namespace
    handle: ActorHandle[Any] = Supervisor.options(**options).remote(  # type: ignore[attr-defined]
        settings, topology.to_dict() if topology is not None else None, design
    )
    try:
        ray.get(handle.ready.remote(), timeout=60)
    except ray.exceptions.GetTimeoutError as exc:
        raise ClusterError(
            "the Supervisor did not start within 60 s", fix="see its log in the Ray dashboard"
        ) from exc
    except ray.exceptions.RayTaskError as exc:
        raise ClusterError(f"the Supervisor failed to start: {exc}") from exc
    return handle
