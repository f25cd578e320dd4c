"""The values of the payments domain: currencies, orders, observed transfers, events."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "Chain",
    "Currency",
    "EventKind",
    "Order",
    "OrderEvent",
    "OrderState",
    "Transfer",
    "TransferStatus",
    "utcnow",
]


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only clock the ledger uses)."""
    return datetime.now(UTC)


class Chain(enum.StrEnum):
    """A blockchain; transaction ids are unique per chain."""

    TRON = "tron"
    TON = "ton"


class Currency(enum.StrEnum):
    """What a buyer can pay with; amounts are integers in the currency's base units."""

    USDT_TRC20 = "usdt_trc20"
    TON = "ton"
    USDT_TON = "usdt_ton"

    @property
    def decimals(self) -> int:
        """Base units per whole coin as a power of ten (USDT 6, TON 9)."""
        return 9 if self is Currency.TON else 6

    @property
    def symbol(self) -> str:
        return "TON" if self is Currency.TON else "USDT"

    @property
    def chain(self) -> Chain:
        return Chain.TRON if self is Currency.USDT_TRC20 else Chain.TON

    @property
    def unique_amounts(self) -> bool:
        """TRC20 transfers carry no memo: each open order needs its own amount."""
        return self is Currency.USDT_TRC20


class OrderState(enum.StrEnum):
    """pending -> paid | expired | underpaid | cancelled; expired -> late (paid after expiry)."""

    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"
    UNDERPAID = "underpaid"
    CANCELLED = "cancelled"
    LATE = "late"


EventKind = Literal["paid", "late", "underpaid", "expired", "suspicious"]


@dataclass(frozen=True)
class Order:
    """One invoice.

    ``amount`` is exactly what the buyer must send, in base units: the price
    plus, for TRC20, the unique offset.  ``comment`` is the memo a TON payment
    must carry (the order id); None for TRC20.
    """

    id: str
    customer: str
    product: str
    currency: Currency
    amount: int
    price: int
    address: str
    comment: str | None
    state: OrderState
    created_at: datetime
    expires_at: datetime
    tx_id: str | None = None
    paid_at: datetime | None = None

    @property
    def chain(self) -> Chain:
        return self.currency.chain


@dataclass(frozen=True)
class OrderEvent:
    """An order changed state (or a suspicious payment was aimed at it)."""

    order: Order
    kind: EventKind
    detail: str
    seq: int = 0
    """Position in the ledger's durable event log; resume a subscription after it."""


class TransferStatus(enum.StrEnum):
    """What the ledger made of one observed payment."""

    CREDITED = "credited"
    LATE = "late"
    UNDERPAID = "underpaid"
    EXTRA = "extra"
    """A second payment for an order that is no longer pending."""
    UNMATCHED = "unmatched"
    SUSPICIOUS = "suspicious"
    """Fake token, fake jetton or similar: never credited, kept for the admin."""


@dataclass(frozen=True)
class Transfer:
    """One final, incoming payment seen on a chain, before matching.

    ``currency`` is None for a transfer of something we do not accept (a fake
    token); ``reason`` then says why it is suspicious.
    """

    chain: Chain
    tx_id: str
    to_address: str
    from_address: str
    currency: Currency | None
    amount: int
    at: datetime
    comment: str | None = None
    reason: str | None = None
    event_index: int = 0
    """Which transfer of its transaction this is: one transaction may pay us
    several times (a batch payout), and each transfer counts once."""

    @property
    def key(self) -> tuple[str, int]:
        """What makes a transfer unique on its chain: (tx_id, event_index)."""
        return (self.tx_id, self.event_index)
