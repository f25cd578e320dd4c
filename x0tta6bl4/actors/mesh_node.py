"""``MeshNode``: one async actor per mesh node, pinned to the Ray node owning its links.

A thin Ray wrapper over :class:`~x0tta6bl4.mesh.service.NodeService`.  The
actor starts the service from ``__init__`` (async actors run it on their
event loop), so when Ray restarts a crashed actor (``max_restarts=-1``) the
new one comes up on its own, reads the routes its predecessor left in the
kernel and adopts them: forwarding never stops.

Every ``mesh.telemetry_interval_s`` it updates its Prometheus series (through
Ray's metrics agent: RTT, loss, ETX per link; route changes, heal events,
rejected datagrams per node), ``ray.put``s the link and node telemetry
batches and hands the refs to the consumer's ``ingest(refs)`` (the
Supervisor) when one is running; the mesh never waits on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError
from ray.util.metrics import Counter, Gauge
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from x0tta6bl4 import loggers
from x0tta6bl4.actors.delivery import BatchDelivery
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError, MeshError
from x0tta6bl4.mesh.node import NodeSnapshot
from x0tta6bl4.mesh.service import NodeService, NodeSpec
from x0tta6bl4.telemetry import BatchBuilder, TelemetryBatch

__all__ = ["MeshNode", "actor_name", "spawn_node", "wait_ready"]

log = loggers.mesh

_NODE_METRICS = ("links_up", "routes", "route_changes", "heal_events", "rejected", "slow_ticks")


def actor_name(run_id: str, node: str) -> str:
    return f"mesh-{run_id}-{node}"


class _Metrics:
    """Prometheus series of one node (Ray prefixes them ``ray_``)."""

    def __init__(self, node: str) -> None:
        self.node = node
        link_keys = ("node", "neighbor")
        self.rtt = Gauge("x0_mesh_link_rtt_ms", "hello round-trip time", link_keys)
        self.loss = Gauge("x0_mesh_link_loss", "hello loss ratio (EWMA)", link_keys)
        self.etx = Gauge("x0_mesh_link_etx", "expected transmission count", link_keys)
        self.up = Gauge("x0_mesh_link_up", "1 when the link is up", link_keys)
        self.routes = Gauge("x0_mesh_routes", "routes installed", ("node",))
        self.counters = {
            "route_changes": Counter("x0_mesh_route_changes", "routes written", ("node",)),
            "heal_events": Counter("x0_mesh_heal_events", "link failures repaired", ("node",)),
            "lfa_repairs": Counter("x0_mesh_lfa_repairs", "switches to an alternate", ("node",)),
        }
        self.rejected = Counter(
            "x0_mesh_rejected_datagrams", "datagrams dropped", ("node", "reason")
        )
        self._last: dict[str, int] = {}

    def update(self, snap: NodeSnapshot) -> None:
        for link in snap.links:
            tags = {"node": self.node, "neighbor": link.neighbor}
            if link.rtt_ms is not None:
                self.rtt.set(link.rtt_ms, tags=tags)
            if link.measured:  # a link starting up reads loss 1, ETX 1e6: not exported
                self.loss.set(link.loss, tags=tags)
                self.etx.set(link.etx if math.isfinite(link.etx) else -1.0, tags=tags)
            self.up.set(1.0 if link.state.value == "up" else 0.0, tags=tags)
        self.routes.set(len(snap.routes), tags={"node": self.node})
        for name, value in snap.counters.items():
            delta = value - self._last.get(name, 0)
            self._last[name] = value
            if delta <= 0:
                continue
            if name.startswith("rejected_"):
                self.rejected.inc(delta, tags={"node": self.node, "reason": name[9:]})
            elif name in self.counters:
                self.counters[name].inc(delta, tags={"node": self.node})


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class MeshNode:
    """Runs one mesh node (see the module doc).

    Args:
        spec: the node: namespace, links, addresses.
        settings: the whole configuration (``mesh`` and ``data_dir`` are used).
        consumer: an actor handle, the name of an actor, or None.
        ray_namespace: where a named consumer is looked up.
    """

    def __init__(
        self,
        spec: NodeSpec,
        settings: Settings,
        consumer: ActorHandle[Any] | str | None = None,
        ray_namespace: str | None = None,
    ) -> None:
        loggers.configure_logging("json", settings.log.level)
        self.spec = spec
        self.settings = settings
        self.service = NodeService(spec, settings.mesh, settings.data_dir, whole_process=True)
        self.metrics = _Metrics(spec.name)
        self.log = log.bind(node=spec.name)
        self.delivery = BatchDelivery(consumer, ray_namespace, self.log)
        self._latest: list[ray.ObjectRef[Any]] = []
        self._node_batch = BatchBuilder(f"mesh:{spec.name}", "node", _NODE_METRICS)
        loop = asyncio.get_running_loop()
        self._start = loop.create_task(self._start_service())
        self._telemetry: asyncio.Task[None] | None = None

    async def _start_service(self) -> None:
        try:
            await self.service.start()
        except Exception:
            self.log.exception("node_start_failed")
            await self.service.stop()
            raise
        self._telemetry = asyncio.get_running_loop().create_task(self._telemetry_loop())

    async def ready(self) -> dict[str, Any]:
        """Waits until the node runs; errors of the start come back as MeshError."""
        try:
            await asyncio.shield(self._start)
        except MeshError:
            raise
        except Exception as exc:
            raise MeshError(f"mesh node {self.spec.name} failed to start: {exc}") from exc
        return self.status()

    def status(self) -> dict[str, Any]:
        return {
            **self.service.status(),
            "pid": os.getpid(),
            "realtime": self.service.realtime,
            "batches_delivered": self.delivery.delivered,
            "batches_dropped": self.delivery.dropped + self.delivery.failed,
        }

    def snapshot(self) -> NodeSnapshot:
        return self.service.snapshot()

    def latest(self) -> list[ray.ObjectRef[Any]]:
        """Refs of the most recent telemetry batches (for tests and ``mesh status``)."""
        return list(self._latest)

    def isolate(self, node: str, reason: str) -> None:
        """Never route through ``node`` (the Supervisor's decision after a blackhole)."""
        if self.service.logic is not None:
            self.service.logic.isolate(node, reason)

    def release(self, node: str) -> None:
        if self.service.logic is not None:
            self.service.logic.release(node)

    async def set_link_cost(self, peer: str, cost: float | None) -> None:
        """Override this node's cost for the link to ``peer`` (None: back to the measured
        cost, ``math.inf``: drain); flooded at once.  Waits for the node to run.  An actor
        restart forgets overrides: the caller re-applies them (idempotent)."""
        await self.ready()
        self.service.logic.set_link_cost(peer, cost)  # type: ignore[union-attr]

    async def stop(self, flush_routes: bool = False) -> None:
        """Stop probing; ``flush_routes`` also removes our kernel routes (teardown)."""
        for task in (self._telemetry, self._start):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.service.stop(flush_routes=flush_routes)

    # --- telemetry ----------------------------------------------------------------

    async def _telemetry_loop(self) -> None:
        interval = self.settings.mesh.telemetry_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await self._ship()
            except Exception:
                self.log.exception("telemetry_failed")

    async def _ship(self) -> None:
        snap = self.service.snapshot()
        self.metrics.update(snap)
        batches = [self._node_row(snap), self.service.logic.link_batch()]  # type: ignore[union-attr]
        # ray.put talks to the object store: off the (real-time) loop, so a busy raylet
        # can never delay a hello.
        refs = await asyncio.to_thread(_put_all, [b for b in batches if len(b)])
        self._latest = refs
        await self.delivery.send(refs)

    def _node_row(self, snap: NodeSnapshot) -> TelemetryBatch:
        c = snap.counters
        rejected = sum(v for k, v in c.items() if k.startswith("rejected_"))
        links_up = sum(1 for link in snap.links if link.state.value == "up")
        values = (
            float(links_up),
            float(len(snap.routes)),
            float(c.get("route_changes", 0)),
            float(c.get("heal_events", 0)),
            float(rejected),
            float(self.service.stats.slow_ticks),
        )
        self._node_batch.add(snap.ts, self.spec.name, values)
        return self._node_batch.build()


def _put_all(batches: list[TelemetryBatch]) -> list[ray.ObjectRef[Any]]:
    return [ray.put(batch) for batch in batches]


def spawn_node(
    spec: NodeSpec,
    settings: Settings,
    run_id: str,
    *,
    ray_namespace: str | None,
    consumer: ActorHandle[Any] | str | None = None,
) -> ActorHandle[Any]:
    """Create the MeshNode actor of ``spec``, pinned to ``spec.ray_node_id`` (or this node)."""
    node_id = spec.ray_node_id or ray.get_runtime_context().get_node_id()
    handle: ActorHandle[Any] = MeshNode.options(  # type: ignore[attr-defined]
        name=actor_name(run_id, spec.name),
        namespace=ray_namespace,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(spec, settings, consumer, ray_namespace)
    return handle


def wait_ready(handles: dict[str, ActorHandle[Any]], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Wait until every node runs, or raise ClusterError (too slow) / MeshError (a start failed);
    the caller stops what did start."""
    refs = {name: handle.ready.remote() for name, handle in handles.items()}
    try:
        return dict(zip(refs, ray.get(list(refs.values()), timeout=timeout_s), strict=True))
    except GetTimeoutError as exc:
        raise ClusterError(
            f"{len(refs)} mesh nodes did not start within {timeout_s:g} s",
            fix="check `ray status` (CPU/memory for the actors) or raise mesh.start_timeout_s",
        ) from exc
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause()  # type: ignore[no-untyped-call]
        if isinstance(cause, MeshError):
            raise cause from exc
        raise ClusterError(f"a mesh node failed to start: {exc}") from exc
