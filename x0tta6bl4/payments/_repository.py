"""The storage interface of the ledger (SQLite today, PostgreSQL can follow) and its rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from x0tta6bl4.payments._models import (
    Chain,
    Currency,
    Order,
    OrderEvent,
    OrderState,
    Transfer,
    TransferStatus,
)

__all__ = [
    "NewOrder",
    "Outcome",
    "PaymentRecord",
    "Repository",
    "StreamWork",
    "parse_stream",
    "stream_of",
]


def stream_of(chain: Chain, address: str) -> str:
    """The name of one polled stream: a chain and one receiving address."""
    return f"{chain.value}:{address}"


def parse_stream(stream: str) -> tuple[Chain, str]:
    chain, _, address = stream.partition(":")
    return Chain(chain), address


@dataclass(frozen=True)
class NewOrder:
    """What the repository needs to place an order (it picks address and amount)."""

    id: str
    customer: str
    product: str
    currency: Currency
    price: int
    addresses: tuple[str, ...]
    expires_at: datetime
    late_window: timedelta
    offset_max: int
    offset_step: int = 1
    """Open amounts on one address keep at least this distance from each other."""


@dataclass(frozen=True)
class Outcome:
    """What recording one transfer did; ``new`` is False for a transfer seen before."""

    tx_id: str
    status: TransferStatus
    order_id: str | None
    new: bool
    event_index: int = 0


@dataclass(frozen=True)
class PaymentRecord:
    """A transfer as the ledger keeps it."""

    chain: Chain
    tx_id: str
    currency: Currency | None
    amount: int
    from_address: str
    to_address: str
    comment: str | None
    at: datetime
    order_id: str | None
    status: TransferStatus
    detail: str
    event_index: int = 0
    """Which transfer of the transaction (see :attr:`Transfer.event_index`)."""


@dataclass(frozen=True)
class StreamWork:
    """Open orders on one stream and the earliest block time that can still matter."""

    pending: int
    since: datetime


class Repository(Protocol):
    """Blocking storage of orders, payments, events, cursors and leases."""

    schema_version: int

    def create_order(self, new: NewOrder, now: datetime) -> Order: ...

    def get_order(self, order_id: str) -> Order | None: ...

    def orders(
        self, customer: str | None = None, states: tuple[OrderState, ...] = (), limit: int = 100
    ) -> list[Order]: ...

    def cancel(self, order_id: str, now: datetime) -> Order: ...

    def expire_due(self, now: datetime) -> list[Order]: ...

    def known(self, chain: Chain, keys: list[tuple[str, int]]) -> set[tuple[str, int]]: ...

    def record(
        self,
        stream: str | None,
        transfers: list[Transfer],
        cursor: str | None,
        now: datetime,
        late_window: timedelta,
    ) -> list[Outcome]: ...

    def payments(
        self, since: datetime | None = None, statuses: tuple[TransferStatus, ...] = ()
    ) -> list[PaymentRecord]: ...

    def events_since(self, seq: int, limit: int = 500) -> list[OrderEvent]: ...

    def last_event_seq(self) -> int: ...

    def cursor(self, stream: str) -> str | None: ...

    def stream_work(self, now: datetime) -> dict[str, StreamWork]: ...

    def lease(self, owner: str, streams: list[str], ttl: timedelta, now: datetime) -> list[str]: ...

    def release(self, owner: str) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
