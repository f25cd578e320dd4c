"""``EbpfAgent``: one per Ray node, pinned there, streaming kernel counters as batch refs.

A thin Ray wrapper over :class:`~x0tta6bl4.ebpf.agent.EbpfAgentLogic`.  Every
``interval_s``, in a worker thread (never on the event loop), it reads the maps
and ``ray.put``s each :class:`~x0tta6bl4.telemetry.TelemetryBatch`; it hands the
list of object refs to the consumer's ``ingest(refs)`` through
:class:`~x0tta6bl4.actors.delivery.BatchDelivery` (at most ``max_inflight``
calls pending, beyond that batches are dropped and counted).  Counters go to
Prometheus through Ray's metrics agent.

The loop never dies: reading, delivery and rescans each catch and log their
own failures.  Every action is idempotent, so a call that failed half-way is
simply repeated on the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError
from ray.util.metrics import Counter, Gauge
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from x0tta6bl4 import errors, loggers
from x0tta6bl4.actors.delivery import BatchDelivery
from x0tta6bl4.ebpf.agent import AgentConfig, EbpfAgentLogic, Target
from x0tta6bl4.ebpf.collector import Increment
from x0tta6bl4.errors import ClusterError, X0Error

__all__ = ["EbpfAgent", "agent_name", "raise_reported", "spawn_agent"]

log = loggers.ebpf

_OUTCOMES = ("delivered", "dropped", "failed")


def agent_name(node_id: str) -> str:
    return f"ebpf-agent-{node_id[:16]}"


def _report(exc: X0Error) -> dict[str, Any]:
    return {"error": type(exc).__name__, "message": exc.message, "fix": exc.fix}


def raise_reported(report: dict[str, Any]) -> None:
    """Re-raise an error an agent reported as a dict, as the same X0Error class."""
    if "error" not in report:
        return
    cls = getattr(errors, str(report["error"]), X0Error)
    if not (isinstance(cls, type) and issubclass(cls, X0Error)) or cls is errors.VerifierError:
        cls = X0Error
    raise cls(report["message"], fix=report["fix"])


class _Metrics:
    """The agent's Prometheus series (exported by Ray's metrics agent, prefixed ``ray_``)."""

    def __init__(self, node: str) -> None:
        self.tags = {"node": node}
        keys = ("node",)
        self.counters = {
            "packets": Counter("x0_ebpf_packets", "packets counted", (*keys, "iface", "hook")),
            "bytes": Counter("x0_ebpf_bytes", "bytes counted", (*keys, "iface", "hook")),
            "drops": Counter("x0_ebpf_drops", "kfree_skb drops", (*keys, "iface", "reason")),
            "retransmits": Counter("x0_ebpf_retransmits", "TCP retransmits", (*keys, "peer")),
        }
        self.batches = Counter("x0_ebpf_batches", "batches by outcome", (*keys, "outcome"))
        self.loop_s = Gauge("x0_ebpf_loop_seconds", "duration of one read-and-ship tick", keys)
        self.attached = Gauge("x0_ebpf_attachments", "programs attached to interfaces", keys)

    def add(self, increments: list[Increment]) -> None:
        for inc in increments:
            self.counters[inc.metric].inc(inc.value, tags={**self.tags, **dict(inc.labels)})

    def batch(self, outcome: str, count: int) -> None:
        if count:
            self.batches.inc(count, tags={**self.tags, "outcome": outcome})

    def deliveries(self, delivery: BatchDelivery, exported: dict[str, int]) -> None:
        """Export how far the delivery counters moved since the last call."""
        for outcome in _OUTCOMES:
            now = getattr(delivery, outcome)
            self.batch(outcome, now - exported.get(outcome, 0))
            exported[outcome] = now


@ray.remote(num_cpus=0, max_concurrency=8)  # type: ignore[call-overload]
class EbpfAgent:
    """Loads the programs on its node and streams their counters (see the module doc).

    Args:
        config: what to attach.
        node_id: the Ray node this agent is pinned to.
        interval_s: read interval, 0.1 s at the fastest.
        rescan_interval_s: how often new namespaces and interfaces are looked for.
        consumer: an actor handle, the name of an actor, or None (keep only the latest).
        ray_namespace: where a named consumer is looked up.
        max_inflight: pending deliveries before batches are dropped.
    """

    def __init__(
        self,
        config: AgentConfig,
        node_id: str,
        interval_s: float = 1.0,
        rescan_interval_s: float = 5.0,
        consumer: ActorHandle[Any] | str | None = None,
        ray_namespace: str | None = None,
        max_inflight: int = 4,
    ) -> None:
        loggers.configure_logging("json", "info")
        self.node_id = node_id
        self.interval_s = max(0.1, interval_s)
        self.rescan_interval_s = rescan_interval_s
        self.logic = EbpfAgentLogic(config, source=f"ebpf:{node_id[:16]}")
        self.metrics = _Metrics(node_id[:16])
        self.log = log.bind(node=node_id[:16])
        self.delivery = BatchDelivery(consumer, ray_namespace, self.log, max_inflight)
        self._exported: dict[str, int] = {}
        self._latest: list[ray.ObjectRef[Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0
        self._last_loop_s = 0.0

    def ready(self) -> str:
        """Answers once the actor runs; returns the node it runs on."""
        return str(ray.get_runtime_context().get_node_id())

    async def start(self) -> dict[str, Any]:
        """Clean stale attachments, attach, start the loop. Errors come back as a dict."""
        if self._task is None:
            try:
                status = await asyncio.to_thread(self.logic.start)
            except X0Error as exc:
                self.log.error("agent_start_failed", error=str(exc))
                return _report(exc)
            self._task = asyncio.get_running_loop().create_task(self._loop())
            self.log.info("agent_started", attached=len(status["attached"]))
        return await self.status()

    async def watch(self, targets: list[Target]) -> dict[str, int]:
        """Attach to more interfaces now (and keep them in every rescan)."""
        self.logic.watch(targets)
        result: dict[str, int] = await asyncio.to_thread(self.logic.rescan)
        return result

    async def _loop(self) -> None:
        next_rescan = time.monotonic() + self.rescan_interval_s
        while True:
            started = time.monotonic()
            await self._tick()
            if started >= next_rescan:
                next_rescan = started + self.rescan_interval_s
                try:
                    await asyncio.to_thread(self.logic.rescan)
                except Exception:
                    self.log.exception("rescan_failed")
            elapsed = time.monotonic() - started
            self._last_loop_s = elapsed
            self.metrics.loop_s.set(elapsed, tags=self.metrics.tags)
            if elapsed > self.interval_s:
                self.log.warning(
                    "loop_slow", elapsed_s=round(elapsed, 3), interval_s=self.interval_s
                )
            await asyncio.sleep(max(0.0, self.interval_s - elapsed))

    async def _tick(self) -> None:
        try:
            refs, increments = await asyncio.to_thread(self._collect)
        except Exception:
            self.log.exception("collect_failed")
            return
        self._ticks += 1
        try:
            self.metrics.add(increments)
            self.metrics.attached.set(len(self.logic.loader.attachments()), tags=self.metrics.tags)
        except Exception:
            self.log.exception("metrics_failed")
        if not refs:
            return
        self._latest = refs
        try:
            outcome = await self.delivery.send(refs)
        except Exception:
            self.log.exception("deliver_failed")
            return
        if outcome == "kept":
            self.metrics.batch("kept", len(refs))
        elif outcome == "dropped":
            self.log.warning("consumer_behind", dropped=self.delivery.dropped)
        self.metrics.deliveries(self.delivery, self._exported)

    def _collect(self) -> tuple[list[ray.ObjectRef[Any]], list[Increment]]:
        """Read the maps and put the batches, all in one object (a worker thread: both
        block; a put costs about 1 ms of CPU however small, the largest cost of a tick)."""
        batches, increments = self.logic.collect()
        return ([ray.put(batches)] if batches else []), increments

    async def latest(self) -> list[ray.ObjectRef[Any]]:
        """Refs of the most recent batches (each to a list of them; :func:`unpack` reads
        either) for ``ebpf top`` and tests."""
        return list(self._latest)

    async def status(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "running": self._task is not None and not self._task.done(),
            "ticks": self._ticks,
            "batches_delivered": self.delivery.delivered,
            "batches_dropped": self.delivery.dropped + self.delivery.failed,
            "loop_s": round(self._last_loop_s, 4),
            **self.logic.status(),
        }

    async def stop(self) -> None:
        """Stop the loop and detach everything; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.logic.close)
        self.log.info("agent_stopped")


def spawn_agent(
    node_id: str,
    config: AgentConfig,
    *,
    interval_s: float,
    rescan_interval_s: float,
    consumer: ActorHandle[Any] | str | None,
    ray_namespace: str | None,
    max_inflight: int,
    start_timeout_s: float,
) -> ActorHandle[Any]:
    """Create the agent pinned to ``node_id`` and wait until it runs there.

    Raises :class:`ClusterError` if it does not start within ``start_timeout_s``
    (the node is gone or cannot host it); the half-created actor is killed, so
    nothing stays pending.
    """
    handle: ActorHandle[Any] = EbpfAgent.options(  # type: ignore[attr-defined]
        name=agent_name(node_id),
        namespace=ray_namespace,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(
        config,
        node_id,
        interval_s=interval_s,
        rescan_interval_s=rescan_interval_s,
        consumer=consumer,
        ray_namespace=ray_namespace,
        max_inflight=max_inflight,
    )
    try:
        ray.get(handle.ready.remote(), timeout=start_timeout_s)
    except GetTimeoutError as exc:
        ray.kill(handle)
        raise ClusterError(
            f"EbpfAgent for node {node_id} did not start within {start_timeout_s:g} s",
            fix="check `ray status`: the node may be gone, or raise ebpf.start_timeout_s",
            node=node_id,
        ) from exc
    except (RayActorError, ActorUnschedulableError) as exc:
        ray.kill(handle)
        raise ClusterError(
            f"EbpfAgent for node {node_id} could not be placed: {exc}",
            fix="check `ray status`: the node may be gone",
            node=node_id,
        ) from exc
    return handle
