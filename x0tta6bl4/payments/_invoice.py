"""Turning an order into what a buyer sees: amounts, payment URIs, wallet links."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from urllib.parse import quote, urlencode

from x0tta6bl4.errors import PaymentError
from x0tta6bl4.payments._address import ton_friendly
from x0tta6bl4.payments._models import Currency, Order
from x0tta6bl4.payments._networks import USDT_TON_MASTER, USDT_TRC20

__all__ = ["display_address", "format_amount", "parse_amount", "payment_uri", "wallet_links"]


def format_amount(amount: int, currency: Currency) -> str:
    """Base units -> ``"12.500001 USDT"`` (trailing zeros kept to two decimals)."""
    whole, frac = divmod(abs(amount), 10**currency.decimals)
    digits = f"{frac:0{currency.decimals}d}".rstrip("0").ljust(2, "0")
    sign = "-" if amount < 0 else ""
    return f"{sign}{whole}.{digits} {currency.symbol}"


def parse_amount(text: str | int | Decimal, currency: Currency) -> int:
    """``"12.5"`` -> base units; more decimals than the currency has is an error."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as exc:
        raise PaymentError(
            f"{text!r} is not an amount", fix="write it like 12.5 (whole coins)"
        ) from exc
    units = value * (10**currency.decimals)
    if units != units.to_integral_value() or units <= 0:
        raise PaymentError(
            f"{text!r} is not a positive amount of {currency.symbol} with at most "
            f"{currency.decimals} decimals",
            fix=f"round it to {currency.decimals} decimals",
        )
    return int(units)


def display_address(order: Order) -> str:
    """The receiving address as a buyer copies it (TON: ``UQ...``; TRON: ``T...``)."""
    if order.currency is Currency.USDT_TRC20:
        return order.address
    return ton_friendly(order.address)


def _decimal(amount: int, currency: Currency) -> str:
    whole, frac = divmod(amount, 10**currency.decimals)
    return f"{whole}.{frac:0{currency.decimals}d}".rstrip("0").rstrip(".")


def _ton_query(order: Order, token: str | None) -> str:
    params: dict[str, str] = {}
    if order.currency is Currency.USDT_TON:
        params["jetton"] = ton_friendly(token or USDT_TON_MASTER["mainnet"], bounceable=True)
    params["amount"] = str(order.amount)
    params["text"] = order.comment or order.id
    return urlencode(params, quote_via=quote)


def payment_uri(order: Order, token: str | None = None) -> str:
    """The URI (and QR payload) a wallet opens to pay ``order``.

    TON: ``ton://transfer/<addr>?amount=<nano>&text=<comment>``; USDT on TON
    adds ``jetton=<master>``; TRC20: ``tron:<addr>?token=<contract>&amount=<decimal>``.
    ``token`` is the USDT contract / jetton master (mainnet's when None).
    """
    if order.currency is Currency.USDT_TRC20:
        contract = token or USDT_TRC20["mainnet"]
        amount = _decimal(order.amount, order.currency)
        return f"tron:{order.address}?token={contract}&amount={amount}"
    return f"ton://transfer/{ton_friendly(order.address)}?{_ton_query(order, token)}"


def wallet_links(order: Order, token: str | None = None) -> dict[str, str]:
    """HTTPS links that open Tonkeeper / Tonhub with the payment filled in (TON only)."""
    if order.currency is Currency.USDT_TRC20:
        return {}
    path = f"transfer/{ton_friendly(order.address)}?{_ton_query(order, token)}"
    return {
        "Tonkeeper": f"https://app.tonkeeper.com/{path}",
        "Tonhub": f"https://tonhub.com/{path}",
    }
