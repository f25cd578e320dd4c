"""The ledger: the one writer of orders and payments, async, over a blocking repository.

Every repository call runs on one dedicated worker thread, so the event loop
never blocks on SQLite and writes from this process are serialised.  The
``Ledger`` Ray actor wraps exactly this class; verifiers and the
:class:`~x0tta6bl4.payments.PaymentService` talk to it through
:class:`LedgerApi`, in-process or over Ray.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from x0tta6bl4 import loggers
from x0tta6bl4.config import PaymentsSettings, Settings
from x0tta6bl4.errors import OrderStateError, PaymentError
from x0tta6bl4.payments._models import (
    Chain,
    Currency,
    Order,
    OrderEvent,
    OrderState,
    Transfer,
    TransferStatus,
    utcnow,
)
from x0tta6bl4.payments._networks import ChainConfig
from x0tta6bl4.payments._repository import NewOrder, Outcome, PaymentRecord, StreamWork
from x0tta6bl4.payments._sqlite import SqliteRepository

__all__ = ["Ledger", "LedgerApi", "ledger_db_path", "new_order_id"]

log = loggers.payments

T = TypeVar("T")

_ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"


def new_order_id() -> str:
    """``x0`` + 8 unambiguous characters: short enough to type as a TON comment."""
    return "x0" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def ledger_db_path(settings: Settings) -> Path:
    """The ledger's SQLite file: ``payments.db_path`` or ``<data_dir>/payments.sqlite``."""
    return settings.payments.db_path or settings.data_dir / "payments.sqlite"


class LedgerApi(Protocol):
    """What verifiers and the service need from the ledger (in-process or a Ray actor)."""

    async def create_order(
        self, customer: str, product: str, currency: Currency, price: int
    ) -> Order: ...

    async def get_order(self, order_id: str) -> Order: ...

    async def orders(
        self, customer: str | None = None, states: tuple[OrderState, ...] = (), limit: int = 100
    ) -> list[Order]: ...

    async def cancel(self, order_id: str) -> Order: ...

    async def expire_due(self) -> list[Order]: ...

    async def known(self, chain: Chain, keys: list[tuple[str, int]]) -> set[tuple[str, int]]: ...

    async def record(
        self, stream: str | None, transfers: list[Transfer], cursor: str | None
    ) -> list[Outcome]: ...

    async def cursor(self, stream: str) -> str | None: ...

    async def stream_work(self) -> dict[str, StreamWork]: ...

    async def lease(self, owner: str, streams: list[str], ttl_s: float) -> list[str]: ...

    async def release(self, owner: str) -> None: ...

    async def events_since(self, seq: int, timeout_s: float = 0.0) -> list[OrderEvent]: ...

    async def last_event_seq(self) -> int: ...

    async def payments(
        self, since: datetime | None = None, statuses: tuple[TransferStatus, ...] = ()
    ) -> list[PaymentRecord]: ...

    async def stats(self) -> dict[str, Any]: ...


class Ledger:
    """The single writer: orders, payments (unique per chain and tx id), events, cursors.

    Args:
        db_path: the SQLite file (created with its schema when missing).
        settings: the ``payments`` section (expiry, late window, unique offsets).
        chains: the resolved receiving addresses and tokens.
        clock: returns the current UTC time; tests pass their own.
    """

    def __init__(
        self,
        db_path: Path | str,
        settings: PaymentsSettings,
        chains: ChainConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.chains = chains
        self.clock = clock
        self.late_window = timedelta(minutes=settings.late_window_min)
        self.db_path = Path(db_path)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="x0-ledger")
        # Opened on the worker thread; the pool runs jobs in order, so every
        # later call finds it open (or re-raises why it could not be opened).
        self._opening: Future[SqliteRepository] = self._pool.submit(SqliteRepository, db_path)
        self._new_events = asyncio.Event()
        self._closed = False

    async def _run(self, call: Callable[[SqliteRepository], T]) -> T:
        """Run ``call(repository)`` on the ledger's worker thread."""
        if self._closed:
            raise PaymentError("the ledger is closed", fix="create a new PaymentService")

        def job() -> T:
            return call(self._opening.result())

        return await asyncio.get_running_loop().run_in_executor(self._pool, job)

    def _notify(self) -> None:
        self._new_events.set()
        self._new_events = asyncio.Event()

    async def create_order(
        self, customer: str, product: str, currency: Currency, price: int
    ) -> Order:
        """Open an invoice for ``price`` base units of ``currency``."""
        currency = Currency(currency)
        if currency not in self.chains.currencies():
            offered = ", ".join(c.value for c in self.chains.currencies()) or "none"
            raise PaymentError(
                f"{currency.value} payments are not configured (offered: {offered})",
                fix="set payments.tron_addresses or payments.ton_addresses",
                currency=currency.value,
            )
        if not isinstance(price, int) or isinstance(price, bool) or price <= 0:
            raise PaymentError(
                f"price {price!r} is not a positive integer of base units",
                fix="convert with x0tta6bl4.payments.parse_amount('12.5', currency)",
            )
        if not customer or not product:
            raise PaymentError("an order needs a customer and a product", fix="pass both")
        now = self.clock()
        new = NewOrder(
            id=new_order_id(),
            customer=customer,
            product=product,
            currency=currency,
            price=price,
            addresses=self.chains.addresses(currency),
            expires_at=now + timedelta(minutes=self.settings.expiry_min),
            late_window=self.late_window,
            offset_max=self.settings.unique_offset_max,
            offset_step=self.settings.unique_offset_step,
        )
        order = await self._run(lambda r: r.create_order(new, now))
        log.info(
            "order_created",
            order=order.id,
            currency=currency.value,
            amount=order.amount,
            address=order.address,
        )
        return order

    async def get_order(self, order_id: str) -> Order:
        order = await self._run(lambda r: r.get_order(order_id))
        if order is None:
            raise OrderStateError(
                f"no order {order_id!r}",
                fix="list orders with `x0tta6bl4 payments orders`",
                order=order_id,
            )
        return order

    async def orders(
        self, customer: str | None = None, states: tuple[OrderState, ...] = (), limit: int = 100
    ) -> list[Order]:
        return await self._run(lambda r: r.orders(customer, tuple(states), limit))

    async def cancel(self, order_id: str) -> Order:
        return await self._run(lambda r: r.cancel(order_id, self.clock()))

    async def expire_due(self) -> list[Order]:
        expired = await self._run(lambda r: r.expire_due(self.clock()))
        if expired:
            log.info("orders_expired", count=len(expired))
            self._notify()
        return expired

    async def known(self, chain: Chain, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        return await self._run(lambda r: r.known(Chain(chain), [(t, int(i)) for t, i in keys]))

    async def record(
        self, stream: str | None, transfers: list[Transfer], cursor: str | None
    ) -> list[Outcome]:
        """Match, record and apply final transfers; advance the stream's cursor with them."""
        outcomes = await self._run(
            lambda r: r.record(stream, list(transfers), cursor, self.clock(), self.late_window)
        )
        fresh = [o for o in outcomes if o.new]
        for outcome in fresh:
            level = log.warning if outcome.status is TransferStatus.SUSPICIOUS else log.info
            level(
                "transfer_recorded",
                tx=outcome.tx_id,
                event_index=outcome.event_index,
                status=outcome.status.value,
                order=outcome.order_id,
                stream=stream,
            )
        if any(o.order_id for o in fresh):
            self._notify()
        return outcomes

    async def cursor(self, stream: str) -> str | None:
        return await self._run(lambda r: r.cursor(stream))

    async def stream_work(self) -> dict[str, StreamWork]:
        return await self._run(lambda r: r.stream_work(self.clock()))

    async def lease(self, owner: str, streams: list[str], ttl_s: float) -> list[str]:
        return await self._run(
            lambda r: r.lease(owner, list(streams), timedelta(seconds=ttl_s), self.clock())
        )

    async def release(self, owner: str) -> None:
        await self._run(lambda r: r.release(owner))

    async def events_since(self, seq: int, timeout_s: float = 0.0) -> list[OrderEvent]:
        """Events after ``seq``; waits up to ``timeout_s`` for one when there are none."""
        waiter = self._new_events
        events = await self._run(lambda r: r.events_since(seq))
        if events or timeout_s <= 0:
            return events
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            return []
        return await self._run(lambda r: r.events_since(seq))

    async def last_event_seq(self) -> int:
        return await self._run(lambda r: r.last_event_seq())

    async def payments(
        self, since: datetime | None = None, statuses: tuple[TransferStatus, ...] = ()
    ) -> list[PaymentRecord]:
        return await self._run(lambda r: r.payments(since, tuple(statuses)))

    async def stats(self) -> dict[str, Any]:
        return await self._run(lambda r: r.stats())

    async def close(self) -> None:
        """Close the database and stop the worker thread (idempotent)."""
        if self._closed:
            return

        def shut() -> None:
            if self._opening.exception() is None:
                self._opening.result().close()

        await asyncio.get_running_loop().run_in_executor(self._pool, shut)
        self._closed = True
        self._pool.shutdown(wait=True)
