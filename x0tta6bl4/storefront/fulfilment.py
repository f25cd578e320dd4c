"""From a payment to a delivered credential: ledger events, delivery, reconciliation.

Delivery is exactly-once in effect: a SQLite claim lets one caller send, the
token is deterministic per order (so a resend after a crash is the same
token), and an interrupted or failed send is released and retried by
:meth:`Fulfilment.reconcile`.  The event cursor is saved after each event,
so a restart resumes where the bot stopped instead of missing a sale (a
first start reads the ledger's events from the beginning and skips those of
orders it did not sell).
"""

from __future__ import annotations

from datetime import UTC, datetime

from x0tta6bl4 import loggers
from x0tta6bl4.errors import X0Error
from x0tta6bl4.identity.credentials import issue_token
from x0tta6bl4.payments import Order, OrderEvent, OrderState, format_amount
from x0tta6bl4.storefront.catalog import Product
from x0tta6bl4.storefront.invoices import Invoices
from x0tta6bl4.storefront.shop import Shop
from x0tta6bl4.storefront.store import InvoiceRecord
from x0tta6bl4.storefront.texts import t

__all__ = ["EVENT_CURSOR", "Fulfilment"]

log = loggers.bot

EVENT_CURSOR = "payments_event_seq"
"""Meta key of the last ledger event the bot handled."""

_CLOSING = {
    OrderState.EXPIRED: "expired",
    OrderState.CANCELLED: "cancelled",
    OrderState.UNDERPAID: "underpaid",
    OrderState.LATE: "late",
}


class Fulfilment:
    """Reacts to order changes: closes invoices, delivers, tells buyers and owners."""

    def __init__(self, shop: Shop, invoices: Invoices) -> None:
        self.shop = shop
        self.invoices = invoices

    async def follow_events(self) -> None:
        """Handle ledger events forever, from the saved cursor on."""
        store = self.shop.store
        after = int(await store.get_meta(EVENT_CURSOR) or 0)
        async for event in self.shop.payments.events(after):
            try:
                await self.handle(event)
            except X0Error as exc:
                log.error("event_failed", order=event.order.id, kind=event.kind, error=str(exc))
            except Exception:
                log.exception("event_failed", order=event.order.id, kind=event.kind)
            await store.set_meta(EVENT_CURSOR, str(event.seq))

    async def handle(self, event: OrderEvent) -> None:
        """React to one ledger event; events of orders the bot did not sell are skipped."""
        order, kind = event.order, event.kind
        record = await self.shop.store.invoice(order.id)
        if record is None:
            return
        self.shop.count(f"events_{kind}")
        if kind == "paid":
            await self.deliver(order)
            return
        if kind == "suspicious":
            await self.notify_admins("admin_suspicious", order, kind=kind, detail=event.detail)
            return
        closed = await self.invoices.close(record, _CLOSING.get(order.state, kind), order)
        if kind == "expired" and closed:
            await self.shop.send(record.chat_id, t(record.lang, "expired", order=order.id))
        elif kind in ("late", "underpaid"):
            await self.shop.send(record.chat_id, t(record.lang, kind, order=order.id))
            await self.notify_admins("admin_suspicious", order, kind=kind, detail=event.detail)

    async def settle(self, order: Order) -> None:
        """Bring the bot's view of ``order`` in line with the ledger's state."""
        if order.state is OrderState.PAID:
            await self.deliver(order)
            return
        status = _CLOSING.get(order.state)
        record = await self.shop.store.invoice(order.id)
        if status is None or record is None:
            return
        if await self.invoices.close(record, status, order) and order.state is OrderState.EXPIRED:
            await self.shop.send(record.chat_id, t(record.lang, "expired", order=order.id))

    async def deliver(self, order: Order, *, force: bool = False) -> bool:
        """Send the join credential for a paid order; True when this call sent it.

        ``force`` (an owner's ``/deliver``) also delivers late or underpaid orders.
        """
        shop = self.shop
        record = await shop.store.invoice(order.id)
        product = shop.catalog.get(order.product)
        if record is None or product is None:
            log.error(
                "cannot_deliver", order=order.id, invoice=record is not None, product=order.product
            )
            return False
        if order.state is not OrderState.PAID and not force:
            return False
        await self.invoices.close(record, "paid", order)
        if not await shop.store.claim_delivery(order.id):
            return False
        _token, text = self.credential(order, product, record.lang)
        text = t(record.lang, "paid", order=order.id) + "\n\n" + text
        if await shop.send(record.chat_id, text) is None:
            await shop.store.release_delivery(order.id)
            return False
        await shop.store.finish_delivery(order.id)
        shop.count("delivered")
        log.info("delivered", order=order.id, plan=product.id, nodes=product.nodes)
        await self.notify_admins("admin_sale", order)
        return True

    def credential(self, order: Order, product: Product, lang: str) -> tuple[str, str]:
        """The order's join token (the same every time) and the message carrying it."""
        issued_at = int((order.paid_at or order.created_at).timestamp())
        expires_at = issued_at + product.duration_s
        token = issue_token(
            self.shop.issuer,
            plan=product.id,
            nodes=product.nodes,
            order_id=order.id,
            issued_at=issued_at,
            expires_at=expires_at,
        )
        until = datetime.fromtimestamp(expires_at, tz=UTC).strftime("%Y-%m-%d %H:%M")
        text = t(
            lang,
            "delivery",
            name=product.title(lang),
            nodes=product.nodes,
            until=until,
            token=token,
        )
        return token, text

    async def resend(self, record: InvoiceRecord) -> bool:
        """Send a delivered credential again (the buyer lost the message)."""
        product = self.shop.catalog.get(record.product_id)
        if record.delivery != "done" or product is None:
            return False
        order = await self.shop.payments.get_order(record.order_id)
        _token, text = self.credential(order, product, record.lang)
        return await self.shop.send(record.chat_id, text) is not None

    async def reconcile(self) -> None:
        """Compare every open invoice and unfinished delivery with the ledger."""
        for record in await self.shop.store.open_invoices():
            try:
                await self.settle(await self.shop.payments.get_order(record.order_id))
            except X0Error as exc:
                log.warning("reconcile_failed", order=record.order_id, error=str(exc))

    async def notify_admins(self, key: str, order: Order, **values: str) -> None:
        shop = self.shop
        product = shop.catalog.get(order.product)
        for admin in shop.settings.admin_ids:
            lang = await shop.store.user_lang(admin) or "en"
            await shop.send(
                admin,
                t(
                    lang,
                    key,
                    name=product.title(lang) if product else order.product,
                    amount=format_amount(order.amount, order.currency),
                    order=order.id,
                    customer=order.customer,
                    **values,
                ),
            )
