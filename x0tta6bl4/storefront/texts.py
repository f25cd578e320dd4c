# Russian texts are Cyrillic on purpose; RUF001 would flag every letter that looks Latin.
# ruff: noqa: RUF001
"""Every text the bot sends, in English and Russian (HTML parse mode).

Values substituted into a template are escaped by :func:`t`, so an owner's
product name or a buyer's input can never inject markup.
"""

from __future__ import annotations

import html
import string
from typing import Any

__all__ = ["TEXTS", "duration_text", "lang_of", "placeholders", "t"]

_EN: dict[str, str] = {
    "welcome": (
        "<b>x0tta6bl4</b> is a self-healing mesh network.\n"
        "Pick a plan; you pay in crypto and get your access token at once."
    ),
    "plan_line": (
        "<b>{name}</b>: {nodes} node(s), {days} days\n{description}\n{usdt} USDT · {ton} TON"
    ),
    "plan_button": "{name} · {usdt} USDT / {ton} TON",
    "choose_currency": "<b>{name}</b>: {nodes} node(s), {days} days.\nHow do you want to pay?",
    "currency_button": "{currency}: {amount}",
    "back": "« Back",
    "invoice": (
        "<b>Invoice {order}</b>: {name}\n\n"
        "Send exactly <code>{amount}</code> {currency}\n"
        "to <code>{address}</code>\n"
        "{comment_line}"
        "\nThe digits after the point identify your payment: send this exact amount.\n"
        "⏳ {left} left (until {until} UTC)."
    ),
    "comment_line": "with the comment <code>{comment}</code> (required)\n",
    "qr_caption": "Scan to pay {amount} {currency}",
    "check_button": "🔄 Check payment",
    "wallet_button": "Open in {wallet}",
    "new_order_button": "🛒 New order",
    "show_invoice_button": "🧾 Show invoice",
    "check_wait": "Checked a moment ago; try again in {seconds} s.",
    "check_pending": "No payment seen yet. It can take a minute or two after you send it.",
    "check_done": "This order is already {state}.",
    "paid": "✅ Payment for order {order} received. Thank you!",
    "invoice_paid": "<b>Invoice {order}</b>: {name}\n\n✅ Paid {amount} {currency}.",
    "invoice_closed": "<b>Invoice {order}</b>: {name}\n\n{state}. /start opens a new order.",
    "delivery": (
        "🔑 Your access to the mesh: <b>{name}</b>, {nodes} node(s), "
        "valid until {until} UTC.\n\n<code>{token}</code>\n\n"
        "On each node run:\n<code>x0tta6bl4 node join TOKEN</code>"
    ),
    "expired": (
        "⌛ Invoice {order} expired unpaid. If you already sent the money, write to /support "
        "with the order id; otherwise /start opens a new order."
    ),
    "underpaid": (
        "⚠️ Order {order}: the payment we saw is less than the invoice amount. The owner has been "
        "told; write to /support with the order id."
    ),
    "late": (
        "⚠️ Order {order}: your payment arrived after the invoice expired. The owner has been "
        "told and will sort it out; /support"
    ),
    "pending_exists": "You have an unpaid invoice {order} ({left} left).",
    "orders_header": "<b>Your orders</b>",
    "orders_line": "{order} · {name} · {amount} {currency} · {state}",
    "orders_empty": "You have no orders yet. /start shows the plans.",
    "help": (
        "/start: plans and prices\n"
        "/orders: your orders and their state\n"
        "/support: how to reach a person\n"
        "/help: this message\n\n"
        "Pay the exact amount shown on the invoice; the bot notices the payment by itself "
        "and sends your access token."
    ),
    "support": "Write to {contact}, and mention your order id.",
    "support_missing": "The owner has not set a support contact yet; please try again later.",
    "admin_only": "This command is for the shop owner.",
    "deliver_usage": "Usage: /deliver ORDER_ID (a paid, late or underpaid order).",
    "deliver_done": "{order}: delivered.",
    "deliver_unknown": "There is no order {order}.",
    "deliver_already": "{order}: already delivered, nothing sent.",
    "stats": (
        "<b>Storefront</b>\n"
        "Orders: {orders}\n{states}\n"
        "Revenue: {revenue}\n"
        "Late or underpaid: {problems}\n"
        "Buyers: {buyers}, tokens delivered: {delivered}"
    ),
    "slow_down": "Too many requests; please wait a few seconds.",
    "unknown": "I did not understand that. /help lists what I can do.",
    "stale_button": "This button is out of date. /start",
    "not_your_order": "This is not one of your orders.",
    "error": "Something went wrong on our side; nothing was lost. Please try again in a minute.",
    "admin_sale": "💰 Sale: {name} for {amount}, order {order}, buyer {customer}",
    "admin_suspicious": "⚠️ {kind} payment on order {order} ({customer}): {detail}",
    "state_pending": "awaiting payment",
    "state_paid": "paid",
    "state_expired": "expired",
    "state_underpaid": "underpaid",
    "state_cancelled": "cancelled",
    "state_late": "paid late",
    "unit_min": "{n} min",
    "unit_h": "{h} h {m} min",
    "currency_usdt_trc20": "USDT (TRC-20)",
    "currency_ton": "TON",
    "currency_usdt_ton": "USDT (TON)",
    "cmd_start": "Plans and prices",
    "cmd_orders": "Your orders",
    "cmd_help": "How it works",
    "cmd_support": "Talk to a person",
}

_RU: dict[str, str] = {
    "welcome": (
        "<b>x0tta6bl4</b> — самовосстанавливающаяся mesh-сеть.\n"
        "Выберите тариф: оплата криптовалютой, токен доступа приходит сразу."
    ),
    "plan_line": (
        "<b>{name}</b>: узлов {nodes}, дней {days}\n{description}\n{usdt} USDT · {ton} TON"
    ),
    "plan_button": "{name} · {usdt} USDT / {ton} TON",
    "choose_currency": "<b>{name}</b>: узлов {nodes}, дней {days}.\nКак будете платить?",
    "currency_button": "{currency}: {amount}",
    "back": "« Назад",
    "invoice": (
        "<b>Счёт {order}</b>: {name}\n\n"
        "Отправьте ровно <code>{amount}</code> {currency}\n"
        "на адрес <code>{address}</code>\n"
        "{comment_line}"
        "\nЦифры после запятой определяют ваш платёж: отправьте точно эту сумму.\n"
        "⏳ Осталось {left} (до {until} UTC)."
    ),
    "comment_line": "с комментарием <code>{comment}</code> (обязательно)\n",
    "qr_caption": "Отсканируйте, чтобы оплатить {amount} {currency}",
    "check_button": "🔄 Проверить оплату",
    "wallet_button": "Открыть в {wallet}",
    "new_order_button": "🛒 Новый заказ",
    "show_invoice_button": "🧾 Показать счёт",
    "check_wait": "Проверяли только что; попробуйте через {seconds} с.",
    "check_pending": "Платёж пока не виден. После отправки это может занять минуту-две.",
    "check_done": "Этот заказ уже: {state}.",
    "paid": "✅ Оплата заказа {order} получена. Спасибо!",
    "invoice_paid": "<b>Счёт {order}</b>: {name}\n\n✅ Оплачено {amount} {currency}.",
    "invoice_closed": "<b>Счёт {order}</b>: {name}\n\n{state}. /start — новый заказ.",
    "delivery": (
        "🔑 Ваш доступ к сети: <b>{name}</b>, узлов {nodes}, "
        "действует до {until} UTC.\n\n<code>{token}</code>\n\n"
        "На каждом узле выполните:\n<code>x0tta6bl4 node join TOKEN</code>"
    ),
    "expired": (
        "⌛ Счёт {order} истёк без оплаты. Если вы уже отправили деньги, напишите в /support "
        "с номером заказа; иначе /start — новый заказ."
    ),
    "underpaid": (
        "⚠️ Заказ {order}: полученная сумма меньше суммы счёта. Владелец уведомлён; "
        "напишите в /support с номером заказа."
    ),
    "late": (
        "⚠️ Заказ {order}: платёж пришёл после истечения счёта. Владелец уведомлён "
        "и решит вопрос; /support"
    ),
    "pending_exists": "У вас есть неоплаченный счёт {order} (осталось {left}).",
    "orders_header": "<b>Ваши заказы</b>",
    "orders_line": "{order} · {name} · {amount} {currency} · {state}",
    "orders_empty": "Заказов пока нет. /start покажет тарифы.",
    "help": (
        "/start — тарифы и цены\n"
        "/orders — ваши заказы и их статус\n"
        "/support — связаться с человеком\n"
        "/help — это сообщение\n\n"
        "Оплатите точную сумму из счёта: бот сам увидит платёж и пришлёт токен доступа."
    ),
    "support": "Напишите {contact} и укажите номер заказа.",
    "support_missing": "Владелец ещё не указал контакт поддержки; попробуйте позже.",
    "admin_only": "Эта команда только для владельца магазина.",
    "deliver_usage": "Использование: /deliver НОМЕР_ЗАКАЗА (оплаченный, опоздавший или неполный).",
    "deliver_done": "{order}: выдан.",
    "deliver_unknown": "Заказа {order} нет.",
    "deliver_already": "{order}: уже выдан, ничего не отправлено.",
    "stats": (
        "<b>Магазин</b>\n"
        "Заказов: {orders}\n{states}\n"
        "Выручка: {revenue}\n"
        "Опоздавшие или неполные платежи: {problems}\n"
        "Покупателей: {buyers}, выдано токенов: {delivered}"
    ),
    "slow_down": "Слишком много запросов; подождите несколько секунд.",
    "unknown": "Не понял. /help — что я умею.",
    "stale_button": "Эта кнопка устарела. /start",
    "not_your_order": "Это не ваш заказ.",
    "error": "У нас что-то пошло не так; ничего не потеряно. Попробуйте через минуту.",
    "admin_sale": "💰 Продажа: {name} за {amount}, заказ {order}, покупатель {customer}",
    "admin_suspicious": "⚠️ Платёж «{kind}» по заказу {order} ({customer}): {detail}",
    "state_pending": "ожидает оплаты",
    "state_paid": "оплачен",
    "state_expired": "истёк",
    "state_underpaid": "оплачен не полностью",
    "state_cancelled": "отменён",
    "state_late": "оплачен с опозданием",
    "unit_min": "{n} мин",
    "unit_h": "{h} ч {m} мин",
    "currency_usdt_trc20": "USDT (TRC-20)",
    "currency_ton": "TON",
    "currency_usdt_ton": "USDT (TON)",
    "cmd_start": "Тарифы и цены",
    "cmd_orders": "Ваши заказы",
    "cmd_help": "Как это работает",
    "cmd_support": "Связаться с человеком",
}

TEXTS: dict[str, dict[str, str]] = {"en": _EN, "ru": _RU}

_RAW_FIELDS = frozenset({"comment_line", "states"})
"""Placeholders filled with text :func:`t` already rendered (and escaped)."""


def lang_of(language_code: str | None) -> str:
    """The bot language for a Telegram ``language_code`` (``ru-RU`` -> ``ru``)."""
    code = (language_code or "").split("-")[0].lower()
    return code if code in TEXTS else "en"


def t(lang: str, key: str, **values: Any) -> str:
    """Render text ``key`` in ``lang``, HTML-escaping every substituted value."""
    template = TEXTS.get(lang, _EN)[key]
    safe = {
        name: value if name in _RAW_FIELDS else html.escape(str(value), quote=False)
        for name, value in values.items()
    }
    return template.format(**safe)


def duration_text(lang: str, seconds: float) -> str:
    """``"42 min"`` or ``"2 h 5 min"``, rounded up to the minute."""
    minutes = max(0, int(-(-seconds // 60)))
    if minutes < 60:
        return t(lang, "unit_min", n=minutes)
    return t(lang, "unit_h", h=minutes // 60, m=minutes % 60)


def placeholders(template: str) -> set[str]:
    """Names a template substitutes (for the tests that keep languages in step)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
