"""PaymentService: the one async facade over ledger, verifier and chain clients.

The Telegram bot, the CLI, the SDK and the actors all use it.  In-process it
owns a :class:`Ledger` on a SQLite file; on Ray it is given the Ledger actor
(any :class:`LedgerApi`) instead, so there is still one writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.errors import ConfigError
from x0tta6bl4.payments._invoice import payment_uri, wallet_links
from x0tta6bl4.payments._ledger import Ledger, LedgerApi
from x0tta6bl4.payments._models import (
    Chain,
    Currency,
    Order,
    OrderEvent,
    OrderState,
    TransferStatus,
    utcnow,
)
from x0tta6bl4.payments._networks import ChainConfig, resolve
from x0tta6bl4.payments._repository import PaymentRecord, StreamWork, stream_of
from x0tta6bl4.payments._source import ChainSource
from x0tta6bl4.payments._toncenter import ToncenterClient, TonSource
from x0tta6bl4.payments._trongrid import TronGridClient, TronSource
from x0tta6bl4.payments._verifier import PollResult, Verifier, sleep_or_stop

__all__ = ["PaymentService", "build_sources"]

log = loggers.payments

_CHECKABLE = (OrderState.PENDING, OrderState.EXPIRED)


def build_sources(settings: PaymentsSettings, chains: ChainConfig) -> dict[Chain, ChainSource]:
    """One chain source per chain that has receiving addresses."""
    sources: dict[Chain, ChainSource] = {}
    if chains.tron_addresses and chains.usdt_trc20_contract:
        client = TronGridClient(
            chains.trongrid_url,
            settings.trongrid_api_key.get_secret_value(),
            settings.http_timeout_s,
        )
        sources[Chain.TRON] = TronSource(
            client, chains.usdt_trc20_contract, settings.tron_confirmations
        )
    if chains.ton_addresses:
        ton = ToncenterClient(
            chains.toncenter_url,
            settings.toncenter_api_key.get_secret_value(),
            settings.http_timeout_s,
        )
        sources[Chain.TON] = TonSource(ton, chains.usdt_ton_master)
    return sources


class PaymentService:
    """Create invoices, follow them, and verify their payments on-chain.

    Args:
        settings: the ``payments`` section; its ``trongrid_url`` /
            ``toncenter_url`` point the clients anywhere (tests: loopback fakes).
        db_path: the SQLite file; ignored when ``ledger`` is given.
        ledger: an existing ledger (e.g. the Ray actor's proxy) to use instead.
        clock: UTC clock for the in-process ledger.

    Example::

        service = PaymentService(settings.payments, "payments.sqlite")
        order = await service.create_order("tg:42", "node-month", Currency.TON, 2 * 10**9)
        print(payment_uri(order))
        order = await service.check(order.id)
        await service.close()
    """

    def __init__(
        self,
        settings: PaymentsSettings,
        db_path: Path | str | None = None,
        *,
        ledger: LedgerApi | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.chains = resolve(settings)
        if ledger is None:
            if db_path is None:
                raise ConfigError(
                    "PaymentService needs a database path or a ledger",
                    fix="pass db_path (e.g. settings.data_dir / 'payments.sqlite')",
                )
            ledger = Ledger(db_path, settings, self.chains, clock)
        self.ledger: LedgerApi = ledger
        self._sources: dict[Chain, ChainSource] | None = None
        self._verifier: Verifier | None = None
        self._closed = asyncio.Event()

    # -- orders ---------------------------------------------------------------

    def currencies(self) -> list[Currency]:
        """The currencies this deployment can take."""
        return self.chains.currencies()

    async def create_order(
        self, customer: str, product: str, currency: Currency, price: int
    ) -> Order:
        """Open an invoice; ``price`` in base units (see :func:`parse_amount`)."""
        return await self.ledger.create_order(customer, product, Currency(currency), price)

    async def get_order(self, order_id: str) -> Order:
        """The order; an unknown id raises :class:`OrderStateError`."""
        return await self.ledger.get_order(order_id)

    async def orders_of(self, customer: str, limit: int = 100) -> list[Order]:
        """A customer's orders, newest first."""
        return await self.ledger.orders(customer, (), limit)

    async def orders(self, states: tuple[OrderState, ...] = (), limit: int = 100) -> list[Order]:
        return await self.ledger.orders(None, states, limit)

    async def cancel(self, order_id: str) -> Order:
        """Cancel a pending order (its unique amount is freed)."""
        return await self.ledger.cancel(order_id)

    async def expire_due(self) -> list[Order]:
        """Expire pending orders past their deadline; returns them."""
        return await self.ledger.expire_due()

    def payment_uri(self, order: Order) -> str:
        """The wallet URI / QR payload for ``order`` with this deployment's tokens."""
        return payment_uri(order, self.chains.token(order.currency))

    def wallet_links(self, order: Order) -> dict[str, str]:
        return wallet_links(order, self.chains.token(order.currency))

    # -- verification ---------------------------------------------------------

    def verifier(self, owner: str = "service", lease: bool = False) -> Verifier:
        """A verifier over this service's ledger and chain clients (created once)."""
        if self._sources is None:
            self._sources = build_sources(self.settings, self.chains)
        if self._verifier is None:
            self._verifier = Verifier(
                self.ledger, self._sources, self.chains, self.settings, owner, lease
            )
        return self._verifier

    async def check(self, order_id: str) -> Order:
        """Poll the chain for ``order_id`` now and return the order as it stands after."""
        order = await self.get_order(order_id)
        if order.state in _CHECKABLE:
            await self.verifier().poll(stream_of(order.chain, order.address))
            order = await self.get_order(order_id)
        return order

    async def poll_all(self) -> list[PollResult]:
        """One verification cycle over every stream with open orders."""
        return await self.verifier().cycle()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Verify and expire in this process until ``stop`` (or :meth:`close`).

        For a single process without Ray; on Ray the actors do this.
        """
        stop = stop or self._closed
        expiring = asyncio.create_task(self._expire_loop(stop))
        try:
            await self.verifier().run(stop)
        finally:
            expiring.cancel()

    async def _expire_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.expire_due()
            await sleep_or_stop(stop, self.settings.poll_interval_s)

    async def reconcile(self, since: datetime | None = None) -> list[PaymentRecord]:
        """Re-scan every receiving address from ``since`` (default: a day ago) and list
        the payments that credit no order: unmatched, suspicious and extra ones."""
        since = since or utcnow() - timedelta(days=1)
        verifier = self.verifier()
        for stream in sorted(verifier.configured):
            await verifier.poll(stream, StreamWork(0, since), rescan=True)
        return await self.ledger.payments(
            since, (TransferStatus.UNMATCHED, TransferStatus.SUSPICIOUS, TransferStatus.EXTRA)
        )

    # -- events and stats -----------------------------------------------------

    async def events(self, after: int | None = None) -> AsyncIterator[OrderEvent]:
        """Order events as they happen (``after``: resume after that event ``seq``).

        Without ``after`` only events from now on are delivered.  Events are
        durable rows in the ledger, so a subscriber that restarts with the
        last ``seq`` it handled misses none.
        """
        seq = await self.ledger.last_event_seq() if after is None else after
        while not self._closed.is_set():
            for event in await self.ledger.events_since(seq, timeout_s=1.0):
                seq = event.seq
                yield event

    async def stats(self) -> dict[str, Any]:
        """Orders per state, revenue per currency, payment outcomes, late/underpaid counts."""
        return await self.ledger.stats()

    async def close(self) -> None:
        """Stop background work and close the clients and the in-process ledger."""
        self._closed.set()
        for source in (self._sources or {}).values():
            await source.aclose()
        self._sources = None
        if isinstance(self.ledger, Ledger):
            await self.ledger.close()

    async def __aenter__(self) -> PaymentService:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
