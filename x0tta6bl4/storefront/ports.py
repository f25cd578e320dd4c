"""What the storefront needs from the payments side (a PaymentService or its Ray proxy)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from x0tta6bl4.payments import Currency, Order, OrderEvent

__all__ = ["PaymentsPort"]


class PaymentsPort(Protocol):
    """The subset of :class:`x0tta6bl4.payments.PaymentService` the bot calls."""

    def currencies(self) -> list[Currency]: ...

    async def create_order(
        self, customer: str, product: str, currency: Currency, price: int
    ) -> Order: ...

    async def get_order(self, order_id: str) -> Order: ...

    async def orders_of(self, customer: str) -> list[Order]: ...

    async def check(self, order_id: str) -> Order: ...

    def events(self, after: int | None = None) -> AsyncIterator[OrderEvent]: ...

    async def stats(self) -> dict[str, Any]: ...

    def payment_uri(self, order: Order) -> str: ...

    def wallet_links(self, order: Order) -> dict[str, str]: ...
