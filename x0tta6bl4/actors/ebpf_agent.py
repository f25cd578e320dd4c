"""``EbpfAgent``: one per Ray node, pinned there, streaming kernel counters as batch refs.

A thin Ray wrapper over :class:`~x0tta6bl4.ebpf.agent.EbpfAgentLogic`.  Every
``interval_s`` it reads the maps in a worker thread (never on the event loop),
``ray.put``s each :class:`~x0tta6bl4.telemetry.TelemetryBatch` and hands the
list of object refs to the consumer's ``ingest(refs)``; at most
``max_inflight`` deliveries may be pending, beyond that a batch is dropped and
counted.  Counters go to Prometheus through Ray's metrics agent.

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
from x0tta6bl4.ebpf.agent import AgentConfig, EbpfAgentLogic, Target
from x0tta6bl4.ebpf.collector import Increment
from x0tta6bl4.errors import ClusterError, X0Error

__all__ = ["CONSUMER_METHOD", "EbpfAgent", "agent_name", "raise_reported", "spawn_agent"]

log = loggers.ebpf

CONSUMER_METHOD = "ingest"
"""The consumer actor's method that receives ``list[ObjectRef[TelemetryBatch]]``."""
_CONSUMER_LOOKUP_S = 5.0


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
        self._consumer = consumer
        self._consumer_looked_at = -1e18
        self._namespace = ray_namespace
        self._max_inflight = max_inflight
        self._inflight: set[asyncio.Task[Any]] = set()
        self._latest: list[ray.ObjectRef[Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._ticks = 0
        self._delivered = 0
        self._dropped = 0
        self._last_loop_s = 0.0
        self.log = log.bind(node=node_id[:16])

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
            batches, increments = await asyncio.to_thread(self.logic.collect)
        except Exception:
            self.log.exception("collect_failed")
            return
        self._ticks += 1
        try:
            self.metrics.add(increments)
            self.metrics.attached.set(len(self.logic.loader.attachments()), tags=self.metrics.tags)
        except Exception:
            self.log.exception("metrics_failed")
        if not batches:
            return
        refs = [ray.put(batch) for batch in batches]
        self._latest = refs
        try:
            self._deliver(refs)
        except Exception:
            self.log.exception("deliver_failed")

    def _resolve_consumer(self) -> ActorHandle[Any] | None:
        if self._consumer is None or isinstance(self._consumer, ActorHandle):
            return self._consumer
        now = time.monotonic()
        if now - self._consumer_looked_at < _CONSUMER_LOOKUP_S:
            return None
        self._consumer_looked_at = now
        try:
            handle = ray.get_actor(self._consumer, namespace=self._namespace)
        except ValueError:
            return None
        self.log.info("consumer_found", consumer=self._consumer)
        self._consumer = handle
        return handle

    def _deliver(self, refs: list[ray.ObjectRef[Any]]) -> None:
        consumer = self._resolve_consumer()
        if consumer is None:
            self.metrics.batch("kept", len(refs))
            return
        if len(self._inflight) >= self._max_inflight:
            self._dropped += len(refs)
            self.metrics.batch("dropped", len(refs))
            self.log.warning("consumer_behind", inflight=len(self._inflight), dropped=self._dropped)
            return
        call = getattr(consumer, CONSUMER_METHOD).remote(refs)
        task = asyncio.get_running_loop().create_task(self._await_delivery(call, len(refs)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _await_delivery(self, call: ray.ObjectRef[Any], count: int) -> None:
        try:
            ack = await call
        except RayActorError:
            self.log.warning("consumer_gone", consumer=str(self._consumer))
            if not isinstance(self._consumer, str):
                self._consumer = None
            self.metrics.batch("failed", count)
            return
        except Exception:
            self.log.exception("consumer_failed")
            self.metrics.batch("failed", count)
            return
        # The Supervisor answers with an ack; batches its queue had no room for are dropped.
        refused = int(ack.get("dropped", 0)) if isinstance(ack, dict) else 0
        self._delivered += count - refused
        self._dropped += refused
        self.metrics.batch("delivered", count - refused)
        self.metrics.batch("dropped", refused)

    async def latest(self) -> list[ray.ObjectRef[Any]]:
        """Refs of the most recent batches (for ``ebpf top`` and tests)."""
        return list(self._latest)

    async def status(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "running": self._task is not None and not self._task.done(),
            "ticks": self._ticks,
            "batches_delivered": self._delivered,
            "batches_dropped": self._dropped,
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
