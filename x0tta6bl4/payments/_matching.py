"""Which order a final transfer pays, and what that does to the order (pure logic).

The ledger calls :func:`match` inside its write transaction with the orders
that could be the target: for TRC20 those on the receiving address with the
transfer's exact amount, for TON those whose comment equals the transfer's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from x0tta6bl4.payments._invoice import format_amount
from x0tta6bl4.payments._models import (
    Currency,
    EventKind,
    Order,
    OrderState,
    Transfer,
    TransferStatus,
)

__all__ = ["CLOCK_SKEW", "Match", "match", "normalize_comment"]

CLOCK_SKEW = timedelta(seconds=30)
"""A block may carry a timestamp this much before our clock created the order."""

_CREDITABLE = (OrderState.PENDING, OrderState.EXPIRED)


@dataclass(frozen=True)
class Match:
    """The ledger's verdict on one transfer.

    When ``new_state`` is set the ledger moves ``order`` there, but only from
    ``pending`` or ``expired`` (a conditional update); ``event`` is emitted.
    """

    status: TransferStatus
    order: Order | None
    new_state: OrderState | None
    event: EventKind | None
    detail: str

    @property
    def from_states(self) -> tuple[OrderState, ...]:
        return _CREDITABLE


def normalize_comment(comment: str | None) -> str | None:
    """Wallets may add whitespace or change case; order ids are lower-case ASCII."""
    if comment is None:
        return None
    text = comment.strip().lower()
    return text or None


def _in_window(order: Order, transfer: Transfer) -> bool:
    return order.created_at - CLOCK_SKEW <= transfer.at <= order.expires_at


def _in_late_window(order: Order, transfer: Transfer, late_window: timedelta) -> bool:
    return order.expires_at < transfer.at <= order.expires_at + late_window


def match(transfer: Transfer, candidates: list[Order], late_window: timedelta) -> Match:
    """Decide what ``transfer`` does, given the orders it could pay."""
    timely = [o for o in candidates if _in_window(o, transfer)]
    late = [o for o in candidates if _in_late_window(o, transfer, late_window)]
    order = min(timely or late, key=lambda o: o.created_at, default=None)
    if transfer.reason is not None:
        return Match(
            TransferStatus.SUSPICIOUS,
            order,
            None,
            "suspicious" if order is not None else None,
            transfer.reason,
        )
    if order is None:
        return Match(TransferStatus.UNMATCHED, None, None, None, _unmatched_detail(transfer))
    if transfer.currency is not order.currency:
        paid = transfer.currency.value if transfer.currency else "an unknown token"
        detail = f"paid in {paid}, order {order.id} wants {order.currency.value}"
        return Match(TransferStatus.UNMATCHED, None, None, None, detail)
    if order.state not in _CREDITABLE:
        detail = f"second payment for order {order.id} ({order.state.value}); refund it"
        return Match(TransferStatus.EXTRA, order, None, "suspicious", detail)
    got = format_amount(transfer.amount, order.currency)
    want = format_amount(order.amount, order.currency)
    if transfer.amount < order.amount:
        when = "" if order in timely else " and late"
        detail = f"received {got} of {want}{when}"
        return Match(TransferStatus.UNDERPAID, order, OrderState.UNDERPAID, "underpaid", detail)
    if order in timely:
        return Match(TransferStatus.CREDITED, order, OrderState.PAID, "paid", f"received {got}")
    detail = f"received {got} at {transfer.at:%Y-%m-%d %H:%M:%S}Z, after expiry"
    return Match(TransferStatus.LATE, order, OrderState.LATE, "late", detail)


def _unmatched_detail(transfer: Transfer) -> str:
    if transfer.currency is None:
        return "not a currency we accept"
    amount = format_amount(transfer.amount, transfer.currency)
    if transfer.currency is Currency.USDT_TRC20:
        return f"{amount} matches no open order's unique amount"
    return f"{amount} with comment {transfer.comment!r} matches no order"
