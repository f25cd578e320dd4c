"""``Ledger``: the one writer of orders and payments, as a named Ray actor.

A thin wrapper over :class:`~x0tta6bl4.payments.Ledger`: every method of
:class:`~x0tta6bl4.payments.LedgerApi` is reachable through :meth:`call`, and
:func:`remote_ledger` turns the actor handle back into a ``LedgerApi`` for
verifiers, the storefront and the SDK.  The actor restarts after a crash
(``max_restarts=-1``) and reopens the same SQLite file: cursors and payments
are committed together, so nothing is lost or credited twice.  It also
expires due orders every ``poll_interval_s`` (at least once a second).
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError, RayTaskError

from x0tta6bl4 import loggers
from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.errors import ClusterError, PaymentError, X0Error
from x0tta6bl4.payments import Ledger, LedgerApi, resolve

__all__ = ["LEDGER_NAME", "LedgerActor", "remote_ledger", "spawn_ledger"]

log = loggers.payments

LEDGER_NAME = "payments-ledger"

_API = frozenset(
    {
        "create_order",
        "get_order",
        "orders",
        "cancel",
        "expire_due",
        "known",
        "record",
        "cursor",
        "stream_work",
        "lease",
        "release",
        "events_since",
        "last_event_seq",
        "payments",
        "stats",
    }
)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class LedgerActor:
    """The ledger on Ray; blocking SQLite work runs on the ledger's own thread."""

    def __init__(self, settings: PaymentsSettings, db_path: str) -> None:
        self.ledger = Ledger(db_path, settings, resolve(settings))
        self.interval_s = max(1.0, settings.poll_interval_s)
        self._expiring = asyncio.get_running_loop().create_task(self._expire_loop())
        log.info("ledger_actor_started", db=db_path)

    async def _expire_loop(self) -> None:
        while True:
            try:
                await self.ledger.expire_due()
            except X0Error as exc:
                log.error("expiry_failed", error=str(exc), **exc.context)
            except Exception:
                log.exception("expiry_crashed")
            await asyncio.sleep(self.interval_s)

    async def call(self, method: str, *args: Any) -> Any:
        """Run one :class:`LedgerApi` method."""
        if method not in _API:
            raise PaymentError(f"the ledger has no method {method!r}", fix="see LedgerApi")
        return await getattr(self.ledger, method)(*args)

    async def ping(self) -> str:
        return str(self.ledger.db_path)

    async def close(self) -> None:
        self._expiring.cancel()
        await self.ledger.close()


class _RemoteLedger:
    """:class:`LedgerApi` over a Ledger actor handle; Ray errors become ours."""

    def __init__(self, handle: ActorHandle[Any]) -> None:
        self.handle = handle

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await self.handle.call.remote(method, *args)
        except RayTaskError as exc:
            if isinstance(exc.cause, X0Error):
                raise exc.cause from None
            raise ClusterError(
                f"the Ledger actor failed in {method}: {exc.cause!r}",
                fix="see the Ledger actor's log in the Ray dashboard",
            ) from exc
        except RayActorError as exc:
            raise ClusterError(
                f"the Ledger actor is unavailable ({method}): {exc}",
                fix="it restarts by itself; retry, or check `x0tta6bl4 payments orders`",
            ) from exc

    def __getattr__(self, method: str) -> Any:
        if method not in _API:
            raise AttributeError(method)

        async def bound(*args: Any) -> Any:
            return await self._call(method, *args)

        return bound


def remote_ledger(handle: ActorHandle[Any]) -> LedgerApi:
    """The Ledger actor as a :class:`LedgerApi` (for PaymentService and verifiers)."""
    return cast(LedgerApi, _RemoteLedger(handle))


def spawn_ledger(settings: PaymentsSettings, db_path: str, namespace: str) -> ActorHandle[Any]:
    """Start (or find) the named Ledger actor and wait until its database is open."""
    handle: ActorHandle[Any] = LedgerActor.options(  # type: ignore[attr-defined]
        name=LEDGER_NAME, namespace=namespace, get_if_exists=True
    ).remote(settings, db_path)
    try:
        ray.get(handle.ping.remote(), timeout=60)
    except (RayActorError, RayTaskError, ray.exceptions.GetTimeoutError) as exc:
        ray.kill(handle)
        raise ClusterError(
            f"the Ledger actor did not start: {exc}",
            fix="check payments.db_path is writable; see the actor's log in the dashboard",
        ) from exc
    return handle
