"""The bot's conversation: catalog, currency, invoice, checks, orders, help, admin.

Handlers receive ``shop`` (the :class:`Shop`), ``flow`` (invoices and
fulfilment) and ``lang`` from the dispatcher's data.  Every id that arrives in
a button is looked up again and checked to belong to the user pressing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, ErrorEvent, InlineKeyboardMarkup, Message

from x0tta6bl4 import loggers
from x0tta6bl4.errors import OrderStateError, PaymentError, X0Error
from x0tta6bl4.payments import Currency, OrderState, format_amount, parse_amount
from x0tta6bl4.storefront.fulfilment import Fulfilment
from x0tta6bl4.storefront.invoices import Invoices
from x0tta6bl4.storefront.keyboards import (
    CheckCb,
    InvoiceCb,
    MenuCb,
    PayCb,
    PlanCb,
    TokenCb,
    catalog_keyboard,
    currency_keyboard,
    pending_keyboard,
    token_keyboard,
)
from x0tta6bl4.storefront.middlewares import reply_error
from x0tta6bl4.storefront.shop import Shop, customer_id
from x0tta6bl4.storefront.stats import stats_text
from x0tta6bl4.storefront.store import InvoiceRecord
from x0tta6bl4.storefront.telegram import redact
from x0tta6bl4.storefront.texts import duration_text, t

__all__ = ["Buy", "Flow", "build_router"]

log = loggers.bot


class Buy(StatesGroup):
    """Where a buyer is in the purchase; persisted, so a restart resumes it."""

    plan = State()
    currency = State()
    paying = State()


@dataclass(frozen=True)
class Flow:
    invoices: Invoices
    fulfilment: Fulfilment


# Commands ------------------------------------------------------------------


async def start(message: Message, state: FSMContext, shop: Shop, lang: str) -> None:
    pending = await _pending_invoice(shop, await state.get_data())
    if pending is not None:
        left = duration_text(lang, pending.expires_at - shop.clock())
        await shop.send(
            message.chat.id,
            t(lang, "pending_exists", order=pending.order_id, left=left),
            pending_keyboard(pending.order_id, lang),
        )
        return
    await shop.send(
        message.chat.id, _catalog_text(shop, lang), catalog_keyboard(shop.catalog, lang)
    )
    await state.set_state(Buy.plan)


async def help_(message: Message, shop: Shop, lang: str) -> None:
    await shop.send(message.chat.id, t(lang, "help"))


async def support(message: Message, shop: Shop, lang: str) -> None:
    contact = shop.settings.support_contact
    text = t(lang, "support", contact=contact) if contact else t(lang, "support_missing")
    await shop.send(message.chat.id, text)


async def orders(message: Message, shop: Shop, lang: str) -> None:
    user_id = _user_id(message)
    rows = await shop.payments.orders_of(customer_id(user_id))
    if not rows:
        await shop.send(message.chat.id, t(lang, "orders_empty"))
        return
    lines = [t(lang, "orders_header")]
    for order in sorted(rows, key=lambda o: o.created_at)[-20:]:
        product = shop.catalog.get(order.product)
        lines.append(
            t(
                lang,
                "orders_line",
                order=order.id,
                name=product.title(lang) if product else order.product,
                amount=format_amount(order.amount, order.currency).split()[0],
                currency=t(lang, f"currency_{order.currency.value}"),
                state=t(lang, f"state_{order.state.value}"),
            )
        )
    delivered = [r.order_id for r in await shop.store.invoices_of(user_id) if r.delivery == "done"]
    await shop.send(message.chat.id, "\n".join(lines), token_keyboard(delivered[-10:], lang))


async def stats(message: Message, shop: Shop, lang: str) -> None:
    if not shop.is_admin(_user_id(message)):
        log.warning("admin_command_refused", user=_user_id(message), command="stats")
        await shop.send(message.chat.id, t(lang, "admin_only"))
        return
    await shop.send(message.chat.id, await stats_text(shop, lang))


async def deliver(
    message: Message, command: CommandObject, shop: Shop, flow: Flow, lang: str
) -> None:
    """Owner only: deliver a late or underpaid order after settling it by hand."""
    if not shop.is_admin(_user_id(message)):
        log.warning("admin_command_refused", user=_user_id(message), command="deliver")
        await shop.send(message.chat.id, t(lang, "admin_only"))
        return
    order_id = (command.args or "").strip()
    if not _is_order_id(order_id):
        await shop.send(message.chat.id, t(lang, "deliver_usage"))
        return
    try:
        order = await shop.payments.get_order(order_id)
    except OrderStateError:
        await shop.send(message.chat.id, t(lang, "deliver_unknown", order=order_id))
        return
    if order.state not in (OrderState.PAID, OrderState.LATE, OrderState.UNDERPAID):
        await shop.send(message.chat.id, _settled(lang, order.state))
        return
    sent = await flow.fulfilment.deliver(order, force=True)
    key = "deliver_done" if sent else "deliver_already"
    await shop.send(message.chat.id, t(lang, key, order=order.id))


# Purchase ------------------------------------------------------------------


async def to_catalog(query: CallbackQuery, state: FSMContext, shop: Shop, lang: str) -> None:
    await _show(shop, query, _catalog_text(shop, lang), catalog_keyboard(shop.catalog, lang))
    await state.set_state(Buy.plan)
    await shop.answer(query.id)


async def choose_plan(
    query: CallbackQuery, callback_data: PlanCb, state: FSMContext, shop: Shop, lang: str
) -> None:
    product = shop.catalog.get(callback_data.product)
    if product is None:
        await shop.answer(query.id, t(lang, "stale_button"))
        return
    text = t(
        lang,
        "choose_currency",
        name=product.title(lang),
        nodes=product.nodes,
        days=product.duration_days,
    )
    await _show(shop, query, text, currency_keyboard(product, shop.currencies, lang))
    await state.set_state(Buy.currency)
    await state.update_data(plan=product.id)
    await shop.answer(query.id)


async def choose_currency(
    query: CallbackQuery,
    callback_data: PayCb,
    state: FSMContext,
    shop: Shop,
    flow: Flow,
    lang: str,
) -> None:
    product = shop.catalog.get(callback_data.product)
    currency = callback_data.currency
    if product is None or currency not in shop.currencies:
        await shop.answer(query.id, t(lang, "stale_button"))
        return
    user_id = query.from_user.id
    chat_id = _chat_id(query)
    # Updates of one buyer are handled one at a time (PerChatIsolation), so a
    # double tap finds the first tap's invoice here instead of making a second.
    pending = await _pending_invoice(shop, await state.get_data())
    if pending and (pending.product_id, pending.currency) == (product.id, currency):
        await shop.answer(query.id)
        return
    try:
        coin = Currency(currency)
        price = parse_amount(product.price(currency), coin)
        order = await shop.payments.create_order(customer_id(user_id), product.id, coin, price)
    except PaymentError as exc:
        log.error("order_failed", user=user_id, product=product.id, error=str(exc))
        await shop.answer(query.id, t(lang, "error"))
        return
    shop.count("orders_created")
    await state.set_state(Buy.paying)
    await state.set_data({"plan": product.id, "order": order.id})
    menu = query.message.message_id if isinstance(query.message, Message) else None
    await flow.invoices.send(chat_id, user_id, lang, order, product, in_place_of=menu)
    await shop.answer(query.id)


async def check(
    query: CallbackQuery, callback_data: CheckCb, shop: Shop, flow: Flow, lang: str
) -> None:
    record = await _own_invoice(shop, query, callback_data.order, lang)
    if record is None:
        return
    wait_s = shop.check_cooldown.take(record.order_id)
    if wait_s > 0:
        shop.count("checks_throttled")
        await shop.answer(query.id, t(lang, "check_wait", seconds=math.ceil(wait_s)))
        return
    shop.count("checks")
    order = await shop.check(record.order_id, record.address)
    if order.state is OrderState.PENDING:
        await shop.answer(query.id, t(lang, "check_pending"))
        return
    text = t(lang, "paid", order=order.id) if order.state is OrderState.PAID else None
    await shop.answer(query.id, text or _settled(lang, order.state))
    await flow.fulfilment.settle(order)


async def show_invoice(
    query: CallbackQuery, callback_data: InvoiceCb, shop: Shop, flow: Flow, lang: str
) -> None:
    record = await _own_invoice(shop, query, callback_data.order, lang)
    if record is None:
        return
    order = await shop.payments.get_order(record.order_id)
    if order.state is OrderState.PENDING and record.status == "open":
        await flow.invoices.show(record, order)
        await shop.answer(query.id)
        return
    await shop.answer(query.id, _settled(lang, order.state))


async def resend_token(
    query: CallbackQuery, callback_data: TokenCb, shop: Shop, flow: Flow, lang: str
) -> None:
    record = await _own_invoice(shop, query, callback_data.order, lang)
    if record is None:
        return
    if not await flow.fulfilment.resend(record):
        await shop.answer(query.id, t(lang, "stale_button"))
        return
    await shop.answer(query.id)


# Fallbacks and errors -------------------------------------------------------


async def stale_button(query: CallbackQuery, shop: Shop, lang: str) -> None:
    await shop.answer(query.id, t(lang, "stale_button"))


async def unknown(message: Message, shop: Shop, lang: str) -> None:
    await shop.send(message.chat.id, t(lang, "unknown"))


async def on_error(event: ErrorEvent, shop: Shop) -> None:
    exc = event.exception
    if isinstance(exc, X0Error):
        log.error(
            "update_failed",
            update=event.update.update_id,
            error=redact(str(exc)),
            kind=type(exc).__name__,
        )
    else:
        log.exception("update_failed", update=event.update.update_id, exc_info=exc)
    shop.count("update_errors")
    await reply_error(shop, event.update, exc)


def build_router() -> Router:
    """A fresh router with every handler (a router joins one dispatcher only)."""
    router = Router(name="storefront")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(support, Command("support"))
    router.message.register(orders, Command("orders"))
    router.message.register(stats, Command("stats"))
    router.message.register(deliver, Command("deliver"))
    router.callback_query.register(to_catalog, MenuCb.filter(F.action == "catalog"))
    router.callback_query.register(choose_plan, PlanCb.filter())
    router.callback_query.register(choose_currency, PayCb.filter())
    router.callback_query.register(check, CheckCb.filter())
    router.callback_query.register(show_invoice, InvoiceCb.filter())
    router.callback_query.register(resend_token, TokenCb.filter())
    router.callback_query.register(stale_button)
    router.message.register(unknown)
    router.errors.register(on_error)
    return router


# Helpers ---------------------------------------------------------------------


def _catalog_text(shop: Shop, lang: str) -> str:
    lines = [t(lang, "welcome"), ""]
    for p in shop.catalog:
        lines.append(
            t(
                lang,
                "plan_line",
                name=p.title(lang),
                nodes=p.nodes,
                days=p.duration_days,
                description=p.blurb(lang),
                usdt=p.price_usdt,
                ton=p.price_ton,
            )
        )
        lines.append("")
    return "\n".join(lines).strip()


async def _show(shop: Shop, query: CallbackQuery, text: str, markup: InlineKeyboardMarkup) -> None:
    """Edit the message the button is on, or send a new one if it is too old to edit."""
    message = query.message
    if isinstance(message, Message) and await shop.edit(
        message.chat.id, message.message_id, text, markup
    ):
        return
    await shop.send(_chat_id(query), text, markup)


async def _pending_invoice(shop: Shop, data: dict[str, object]) -> InvoiceRecord | None:
    order_id = data.get("order")
    if not isinstance(order_id, str):
        return None
    record = await shop.store.invoice(order_id)
    if record is None or record.status != "open" or record.expires_at <= shop.clock():
        return None
    return record


async def _own_invoice(
    shop: Shop, query: CallbackQuery, order_id: str, lang: str
) -> InvoiceRecord | None:
    record = await shop.store.invoice(order_id) if _is_order_id(order_id) else None
    if record is None or record.user_id != query.from_user.id:
        log.warning("foreign_order_button", user=query.from_user.id, order=order_id[:32])
        await shop.answer(query.id, t(lang, "not_your_order"))
        return None
    return record


def _settled(lang: str, state: OrderState) -> str:
    return t(lang, "check_done", state=t(lang, f"state_{state.value}"))


def _is_order_id(value: str) -> bool:
    return 4 <= len(value) <= 32 and value.isascii() and value.isalnum()


def _user_id(message: Message) -> int:
    return message.from_user.id if message.from_user else message.chat.id


def _chat_id(query: CallbackQuery) -> int:
    return query.message.chat.id if query.message is not None else query.from_user.id
