"""The owner's ``/stats``: orders, revenue per currency, problem payments, buyers."""

from __future__ import annotations

from typing import Any

from x0tta6bl4.payments import Currency, format_amount
from x0tta6bl4.storefront.shop import Shop
from x0tta6bl4.storefront.texts import t

__all__ = ["stats_text"]


async def stats_text(shop: Shop, lang: str) -> str:
    """Render the ledger's statistics and the bot's own counts."""
    ledger: dict[str, Any] = await shop.payments.stats()
    by_state: dict[str, int] = ledger.get("orders", {})
    states = "\n".join(
        f"  {t(lang, f'state_{state}')}: {count}" for state, count in by_state.items() if count
    )
    revenue = ", ".join(
        f"{format_amount(units, Currency(code)).split()[0]} {t(lang, f'currency_{code}')}"
        for code, units in ledger.get("revenue", {}).items()
        if units
    )
    return t(
        lang,
        "stats",
        orders=sum(by_state.values()),
        states=states,
        revenue=revenue or "0",
        problems=int(ledger.get("late", 0)) + int(ledger.get("underpaid", 0)),
        buyers=await shop.store.count_buyers(),
        delivered=await shop.store.delivered_count(),
    )
