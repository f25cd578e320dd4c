"""Payments settings wired to the loopback fakes, for tests, benchmarks and the storefront."""

from __future__ import annotations

from typing import Any

from tests.fakes.toncenter import USDT_TON_MAINNET, FakeToncenter, ton_address
from tests.fakes.trongrid import USDT_MAINNET, FakeTronGrid, tron_address
from x0tta6bl4.config import PaymentsSettings

__all__ = ["SHOP_TON", "SHOP_TRON", "payments_settings"]

SHOP_TRON = tron_address("shop")
"""The shop's receiving TRON address in tests."""
SHOP_TON = ton_address("shop")
"""The shop's receiving TON wallet in tests (raw form)."""


def payments_settings(
    tron: FakeTronGrid | None = None, ton: FakeToncenter | None = None, **overrides: Any
) -> PaymentsSettings:
    """Settings that point the chain clients at the fakes (fast polling, no waiting)."""
    values: dict[str, Any] = {
        "enabled": True,
        "tron_addresses": [SHOP_TRON] if tron else [],
        "ton_addresses": [SHOP_TON] if ton else [],
        "trongrid_url": tron.url if tron else "",
        "toncenter_url": ton.url if ton else "",
        "usdt_trc20_contract": USDT_MAINNET,
        "usdt_ton_master": USDT_TON_MAINNET,
        "tron_confirmations": tron.finality_depth if tron else 0,
        "poll_interval_s": 0.2,
        "idle_poll_interval_s": 1.0,
        "backoff_max_s": 2.0,
        "http_timeout_s": 5.0,
    }
    values.update(overrides)
    return PaymentsSettings(**values)
