"""``PaymentVerifier``: a stateless poller of TronGrid / toncenter, as a Ray actor.

A thin wrapper over :class:`~x0tta6bl4.payments.Verifier`.  It starts polling
as soon as it is created (and again after Ray restarts it), talks to the
named Ledger actor for cursors, leases and recording, and keeps nothing of
its own: kill it at any moment and a restarted or sibling verifier picks the
streams up where the ledger's cursors say.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.ledger import LEDGER_NAME, remote_ledger
from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.payments import Verifier, build_sources, resolve

__all__ = ["PaymentVerifierActor", "spawn_verifier", "verifier_name"]

log = loggers.payments


def verifier_name(index: int) -> str:
    return f"payment-verifier-{index}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class PaymentVerifierActor:
    """Polls the streams it leases until :meth:`stop`."""

    def __init__(self, settings: PaymentsSettings, owner: str, namespace: str) -> None:
        chains = resolve(settings)
        ledger = remote_ledger(ray.get_actor(LEDGER_NAME, namespace=namespace))
        self.verifier = Verifier(ledger, build_sources(settings, chains), chains, settings, owner)
        self._stop = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self.verifier.run(self._stop))

    async def status(self) -> dict[str, Any]:
        v = self.verifier
        return {
            "owner": v.owner,
            "running": not self._task.done(),
            "streams": list(v.held),
            "polls": v.polls,
            "errors": v.errors,
        }

    async def stop(self) -> None:
        """Stop polling, release the leases and close the HTTP clients (idempotent)."""
        self._stop.set()
        await asyncio.gather(self._task, return_exceptions=True)
        for source in self.verifier.sources.values():
            await source.aclose()


def spawn_verifier(settings: PaymentsSettings, index: int, namespace: str) -> ActorHandle[Any]:
    name = verifier_name(index)
    handle: ActorHandle[Any] = PaymentVerifierActor.options(  # type: ignore[attr-defined]
        name=name, namespace=namespace, get_if_exists=True
    ).remote(settings, name, namespace)
    return handle
