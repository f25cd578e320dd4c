"""Inline keyboards and the typed callback data behind their buttons.

Callback data is parsed by aiogram's :class:`CallbackData` factories; a value
that does not parse (an old or forged button) matches no handler and gets the
"out of date" answer.  Ids inside are validated again before use.
"""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from x0tta6bl4.storefront.catalog import Catalog, Product
from x0tta6bl4.storefront.texts import t

__all__ = [
    "CheckCb",
    "InvoiceCb",
    "MenuCb",
    "PayCb",
    "PlanCb",
    "TokenCb",
    "catalog_keyboard",
    "currency_keyboard",
    "invoice_keyboard",
    "pending_keyboard",
    "token_keyboard",
]


class PlanCb(CallbackData, prefix="plan"):
    product: str


class PayCb(CallbackData, prefix="pay"):
    product: str
    currency: str


class CheckCb(CallbackData, prefix="chk"):
    order: str


class InvoiceCb(CallbackData, prefix="inv"):
    order: str


class TokenCb(CallbackData, prefix="tok"):
    order: str


class MenuCb(CallbackData, prefix="menu"):
    action: str


def _markup(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def catalog_keyboard(catalog: Catalog, lang: str) -> InlineKeyboardMarkup:
    return _markup(
        [
            [
                InlineKeyboardButton(
                    text=t(
                        lang,
                        "plan_button",
                        name=p.title(lang),
                        usdt=p.price_usdt,
                        ton=p.price_ton,
                    ),
                    callback_data=PlanCb(product=p.id).pack(),
                )
            ]
            for p in catalog
        ]
    )


def currency_keyboard(product: Product, currencies: list[str], lang: str) -> InlineKeyboardMarkup:
    rows = [
        [
            InlineKeyboardButton(
                text=t(
                    lang,
                    "currency_button",
                    currency=t(lang, f"currency_{c}"),
                    amount=product.price(c),
                ),
                callback_data=PayCb(product=product.id, currency=c).pack(),
            )
        ]
        for c in currencies
    ]
    rows.append(
        [InlineKeyboardButton(text=t(lang, "back"), callback_data=MenuCb(action="catalog").pack())]
    )
    return _markup(rows)


def invoice_keyboard(order_id: str, wallets: dict[str, str], lang: str) -> InlineKeyboardMarkup:
    rows = [
        [InlineKeyboardButton(text=t(lang, "wallet_button", wallet=name), url=url)]
        for name, url in wallets.items()
    ]
    rows.append(
        [
            InlineKeyboardButton(
                text=t(lang, "check_button"), callback_data=CheckCb(order=order_id).pack()
            )
        ]
    )
    return _markup(rows)


def pending_keyboard(order_id: str, lang: str) -> InlineKeyboardMarkup:
    return _markup(
        [
            [
                InlineKeyboardButton(
                    text=t(lang, "show_invoice_button"),
                    callback_data=InvoiceCb(order=order_id).pack(),
                ),
                InlineKeyboardButton(
                    text=t(lang, "check_button"), callback_data=CheckCb(order=order_id).pack()
                ),
            ],
            [
                InlineKeyboardButton(
                    text=t(lang, "new_order_button"),
                    callback_data=MenuCb(action="catalog").pack(),
                )
            ],
        ]
    )


def token_keyboard(order_ids: list[str], lang: str) -> InlineKeyboardMarkup | None:
    if not order_ids:
        return None
    return _markup(
        [
            [InlineKeyboardButton(text=f"🔑 {oid}", callback_data=TokenCb(order=oid).pack())]
            for oid in order_ids
        ]
    )
