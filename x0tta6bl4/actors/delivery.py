"""Handing telemetry batch refs to a consumer actor without ever waiting on it.

Producers (MeshNode, EbpfAgent) ``ray.put`` their batches and give the refs
to :meth:`BatchDelivery.send`: the consumer (the Supervisor, by name or
handle) gets them through ``ingest(refs)`` as a fire-and-forget call; at most
``max_inflight`` calls may be pending, beyond that batches are dropped and
counted, as are those the consumer's ack says it dropped.  A consumer that is
absent or dies costs the producer nothing: the name is looked up again every
few seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError

__all__ = ["CONSUMER_METHOD", "BatchDelivery"]

CONSUMER_METHOD = "ingest"
"""The consumer actor's method that receives ``list[ObjectRef[TelemetryBatch]]``."""
LOOKUP_INTERVAL_S = 5.0


class BatchDelivery:
    """Delivers refs to ``consumer`` (an actor handle, a named actor, or None: keep only).

    Await :meth:`send` on the producer's event loop.
    """

    def __init__(
        self,
        consumer: ActorHandle[Any] | str | None,
        namespace: str | None,
        log: Any,
        max_inflight: int = 4,
    ) -> None:
        self.name = consumer if isinstance(consumer, str) and consumer else None
        self.handle = consumer if isinstance(consumer, ActorHandle) else None
        self.namespace = namespace
        self.log = log
        self.max_inflight = max_inflight
        self.delivered = self.dropped = self.failed = 0
        self._looked_at = -math.inf
        self._inflight: set[asyncio.Task[None]] = set()

    def _resolve(self) -> ActorHandle[Any] | None:
        if self.handle is not None or self.name is None:
            return self.handle
        now = time.monotonic()
        if now - self._looked_at < LOOKUP_INTERVAL_S:
            return None
        self._looked_at = now
        try:
            self.handle = ray.get_actor(self.name, namespace=self.namespace)
        except ValueError:
            return None
        self.log.info("consumer_found", consumer=self.name)
        return self.handle

    async def send(self, refs: list[ray.ObjectRef[Any]]) -> str:
        """Start delivering ``refs``; returns ``kept`` (no consumer), ``dropped`` or ``sent``.

        The name lookup (a GCS round trip) runs in a worker thread, never on the loop;
        once the handle is known, no thread is involved.
        """
        consumer = self.handle
        if consumer is None and self.name is not None:
            consumer = await asyncio.to_thread(self._resolve)
        if consumer is None:
            return "kept"
        if len(self._inflight) >= self.max_inflight:
            self.dropped += len(refs)
            return "dropped"
        call = getattr(consumer, CONSUMER_METHOD).remote(refs)
        task = asyncio.get_running_loop().create_task(self._await(call, len(refs)))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return "sent"

    async def _await(self, call: ray.ObjectRef[Any], count: int) -> None:
        try:
            ack = await call
        except RayActorError:
            self.log.warning("consumer_gone", consumer=self.name)
            self.handle = None  # a named consumer is looked up again
            self.failed += count
            return
        except Exception:
            self.log.exception("consumer_failed")
            self.failed += count
            return
        # The Supervisor acks with {"dropped": n}: batches its queue had no room for.
        refused = min(count, int(ack.get("dropped", 0))) if isinstance(ack, dict) else 0
        self.delivered += count - refused
        self.dropped += refused
