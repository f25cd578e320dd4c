"""The public surface of x0tta6bl4.payments: complete, sorted, and free of Ray."""

from __future__ import annotations

import subprocess
import sys

import x0tta6bl4.payments as payments
from x0tta6bl4.payments import Currency, OrderState


def test_exports_are_sorted_and_resolve() -> None:
    assert payments.__all__ == sorted(payments.__all__)
    assert all(hasattr(payments, name) for name in payments.__all__)


def test_enum_values_are_the_documented_strings() -> None:
    assert [c.value for c in Currency] == ["usdt_trc20", "ton", "usdt_ton"]
    assert {c: c.decimals for c in Currency} == {
        Currency.USDT_TRC20: 6,
        Currency.TON: 9,
        Currency.USDT_TON: 6,
    }
    assert {s.value for s in OrderState} == {
        "pending",
        "paid",
        "expired",
        "underpaid",
        "cancelled",
        "late",
    }


def test_the_library_does_not_import_ray() -> None:
    code = "import sys, x0tta6bl4.payments; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
