"""The invoice a buyer sees: exact amount, address, comment, countdown, QR code.

An invoice is two messages: a text message with the details, the wallet deep
links and the "Check payment" button (the currency menu turns into it), and
below it a QR photo of the payment URI, rendered locally.  The text message
is edited as time passes and once the order settles; the QR photo is deleted
when the invoice closes, so nobody pays an expired invoice by scanning it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

from aiogram.types import InlineKeyboardMarkup

from x0tta6bl4 import loggers
from x0tta6bl4.payments import Order, format_amount
from x0tta6bl4.storefront.catalog import Product
from x0tta6bl4.storefront.keyboards import invoice_keyboard
from x0tta6bl4.storefront.qr import qr_png
from x0tta6bl4.storefront.shop import Shop
from x0tta6bl4.storefront.store import InvoiceRecord
from x0tta6bl4.storefront.texts import duration_text, t

__all__ = ["Invoices"]

log = loggers.bot


class Invoices:
    """Sends, refreshes and closes invoice messages."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    async def send(
        self,
        chat_id: int,
        user_id: int,
        lang: str,
        order: Order,
        product: Product,
        in_place_of: int | None = None,
    ) -> InvoiceRecord:
        """Show ``order`` to the buyer and remember where it is shown.

        ``in_place_of``: a message of the bot (the currency choice) that
        becomes the invoice text, so no stale menu stays behind.
        """
        amount_text = format_amount(order.amount, order.currency).split()[0]
        record = InvoiceRecord(
            order_id=order.id,
            user_id=user_id,
            chat_id=chat_id,
            lang=lang,
            product_id=product.id,
            currency=order.currency.value,
            amount_text=amount_text,
            address=order.address,
            comment=order.comment,
            wallets=json.dumps(self.shop.payments.wallet_links(order)),
            expires_at=order.expires_at.timestamp(),
            created_at=order.created_at.timestamp(),
        )
        await self.shop.store.add_invoice(record)
        return await self.show(record, order, in_place_of)

    async def show(
        self, record: InvoiceRecord, order: Order, in_place_of: int | None = None
    ) -> InvoiceRecord:
        """Send (or send again) the text and the QR photo of an open invoice."""
        shop = self.shop
        # The QR code renders on a worker thread while the text goes out.
        uri = shop.payments.payment_uri(order)
        rendering = asyncio.ensure_future(asyncio.to_thread(qr_png, uri))
        try:
            text_id = await self._show_text(record, in_place_of)
        finally:
            png = await rendering
        caption = t(
            record.lang,
            "qr_caption",
            amount=record.amount_text,
            currency=t(record.lang, f"currency_{record.currency}"),
        )
        photo = await shop.send_photo(record.chat_id, png, caption)
        if photo is None or text_id is None:
            return record
        await shop.delete(record.chat_id, record.qr_message_id)
        if record.message_id is not None and record.message_id != text_id:
            await shop.drop_markup(record.chat_id, record.message_id)
        shop.store.set_messages(record.order_id, text_id, photo.message_id)
        shop.count("invoices_shown")
        return replace(record, message_id=text_id, qr_message_id=photo.message_id)

    async def _show_text(self, record: InvoiceRecord, in_place_of: int | None) -> int | None:
        text, keyboard = self.text(record), self.keyboard(record)
        if in_place_of is not None and await self.shop.edit(
            record.chat_id, in_place_of, text, keyboard
        ):
            return in_place_of
        message = await self.shop.send(record.chat_id, text, keyboard)
        return None if message is None else message.message_id

    def text(self, record: InvoiceRecord) -> str:
        lang = record.lang
        product = self.shop.catalog.get(record.product_id)
        comment_line = t(lang, "comment_line", comment=record.comment) if record.comment else ""
        expires = datetime.fromtimestamp(record.expires_at, tz=UTC)
        return t(
            lang,
            "invoice",
            order=record.order_id,
            name=product.title(lang) if product else record.product_id,
            amount=record.amount_text,
            currency=t(lang, f"currency_{record.currency}"),
            address=record.address,
            comment_line=comment_line,
            left=duration_text(lang, record.expires_at - self.shop.clock()),
            until=expires.strftime("%H:%M"),
        )

    async def refresh_countdowns(self) -> int:
        """Edit every open, unexpired invoice to show the time left; returns edits made."""
        now = self.shop.clock()
        edited = 0
        for record in await self.shop.store.open_invoices():
            if record.status != "open" or record.message_id is None or record.expires_at <= now:
                continue
            text = self.text(record)
            if await self.shop.edit(record.chat_id, record.message_id, text, self.keyboard(record)):
                edited += 1
        return edited

    def keyboard(self, record: InvoiceRecord) -> InlineKeyboardMarkup:
        return invoice_keyboard(record.order_id, json.loads(record.wallets), record.lang)

    async def close(self, record: InvoiceRecord, status: str, order: Order) -> bool:
        """Turn an open invoice into its final form; False when it was closed already."""
        shop = self.shop
        if not await shop.store.close_invoice(record.order_id, status):
            return False
        lang = record.lang
        product = shop.catalog.get(record.product_id)
        name = product.title(lang) if product else record.product_id
        if status == "paid":
            currency = t(lang, f"currency_{record.currency}")
            amount = format_amount(order.amount, order.currency).split()[0]
            text = t(
                lang,
                "invoice_paid",
                order=record.order_id,
                name=name,
                amount=amount,
                currency=currency,
            )
        else:
            state = t(lang, f"state_{status}")
            text = t(
                lang,
                "invoice_closed",
                order=record.order_id,
                name=name,
                state=state[:1].upper() + state[1:],
            )
        if record.message_id is not None:
            await shop.edit(record.chat_id, record.message_id, text)
        await shop.delete(record.chat_id, record.qr_message_id)
        return True
