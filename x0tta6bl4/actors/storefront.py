"""``Storefront``: the Telegram bot as a named Ray actor.

A thin wrapper over :func:`x0tta6bl4.storefront.serve`, run as a task on the
actor's event loop.  When the payments component is up, the bot talks to the
named Ledger actor (the single writer) and leaves verification to the
PaymentVerifier actors; otherwise it runs its own in-process PaymentService
on the configured ledger file, like ``x0tta6bl4 bot``.  ``num_cpus=0``: the
bot waits on the network, it does not compute.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.ledger import LEDGER_NAME, remote_ledger
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import X0Error
from x0tta6bl4.payments import PaymentService

__all__ = ["STOREFRONT_NAME", "StorefrontActor"]

log = loggers.bot

STOREFRONT_NAME = "Storefront"


@ray.remote(num_cpus=0, max_restarts=0)
class StorefrontActor:
    """Runs the storefront until :meth:`stop`; :meth:`start` reports readiness or the error."""

    def __init__(self, settings: Settings, namespace: str) -> None:
        loggers.configure_logging(settings.log.format, settings.log.level)
        self.settings = settings
        self.namespace = namespace
        self._stop = asyncio.Event()
        self._ready: asyncio.Future[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._status: Any = None
        self.ledger = "in-process"

    async def start(self) -> dict[str, Any]:
        """Start the bot; returns its status, or ``{"error", "message", "fix"}``."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        payments = self._shared_payments()
        self._task = loop.create_task(self._serve(payments))
        return await self._ready

    def _shared_payments(self) -> PaymentService | None:
        try:
            handle: ActorHandle[Any] = ray.get_actor(LEDGER_NAME, namespace=self.namespace)
        except ValueError:
            return None
        self.ledger = LEDGER_NAME
        return PaymentService(self.settings.payments, ledger=remote_ledger(handle))

    async def _serve(self, payments: PaymentService | None) -> None:
        from x0tta6bl4.storefront import serve

        def ready(storefront: Any) -> None:
            self._status = storefront.status
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(self.status())

        try:
            await serve(self.settings, self._stop, payments=payments, on_ready=ready)
        except X0Error as exc:
            log.error("storefront_failed", error=str(exc))
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(
                    {"error": type(exc).__name__, "message": exc.message, "fix": exc.fix}
                )
        except Exception as exc:
            log.exception("storefront_crashed")
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            if payments is not None:
                await payments.close()

    def status(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"ledger": self.ledger}
        if self._status is not None:
            detail.update(self._status())
        if self._task is not None and self._task.done():
            detail["stopped"] = True
        return detail

    async def stop(self) -> None:
        """Stop the bot and close what it opened; idempotent."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
