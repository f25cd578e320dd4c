"""Payments: invoices paid in USDT-TRC20, TON or USDT on TON, verified on-chain exactly once.

Public surface (stable; the storefront builds on it)::

    from x0tta6bl4.payments import Currency, PaymentService, format_amount, payment_uri

    service = PaymentService(settings.payments, db_path)
    order = await service.create_order("tg:42", "node-month", Currency.USDT_TRC20, 12_500_000)
    format_amount(order.amount, order.currency)   # "12.500001 USDT" (unique amount)
    async for event in service.events(): ...      # paid / late / underpaid / expired / suspicious

Library code: no Ray here; ``x0tta6bl4.actors.ledger`` and
``x0tta6bl4.actors.payment_verifier`` wrap :class:`Ledger` and :class:`Verifier`.
"""

from __future__ import annotations

from x0tta6bl4.payments._address import normalize_ton, normalize_tron, ton_friendly
from x0tta6bl4.payments._invoice import (
    display_address,
    format_amount,
    parse_amount,
    payment_uri,
    wallet_links,
)
from x0tta6bl4.payments._ledger import Ledger, LedgerApi, ledger_db_path, new_order_id
from x0tta6bl4.payments._models import (
    Chain,
    Currency,
    EventKind,
    Order,
    OrderEvent,
    OrderState,
    Transfer,
    TransferStatus,
    utcnow,
)
from x0tta6bl4.payments._networks import ChainConfig, resolve
from x0tta6bl4.payments._repository import Outcome, PaymentRecord, StreamWork, stream_of
from x0tta6bl4.payments._service import PaymentService, build_sources
from x0tta6bl4.payments._verifier import PollResult, Verifier

__all__ = [
    "Chain",
    "ChainConfig",
    "Currency",
    "EventKind",
    "Ledger",
    "LedgerApi",
    "Order",
    "OrderEvent",
    "OrderState",
    "Outcome",
    "PaymentRecord",
    "PaymentService",
    "PollResult",
    "StreamWork",
    "Transfer",
    "TransferStatus",
    "Verifier",
    "build_sources",
    "display_address",
    "format_amount",
    "ledger_db_path",
    "new_order_id",
    "normalize_ton",
    "normalize_tron",
    "parse_amount",
    "payment_uri",
    "resolve",
    "stream_of",
    "ton_friendly",
    "utcnow",
    "wallet_links",
]
