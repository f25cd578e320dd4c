"""``x0tta6bl4 payments`` against the loopback chains: invoice, check, orders, reconcile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes import SHOP_TON, FakeToncenter, payments_settings
from x0tta6bl4.cli import app
from x0tta6bl4.cli._payments import parse_since
from x0tta6bl4.errors import ConfigError


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeToncenter]:
    with FakeToncenter() as fake:
        settings = payments_settings(ton=fake)
        monkeypatch.setenv("X0_DATA_DIR", str(tmp_path))
        monkeypatch.setenv("X0_PAYMENTS__TON_ADDRESSES", json.dumps(settings.ton_addresses))
        monkeypatch.setenv("X0_PAYMENTS__TONCENTER_URL", fake.url)
        yield fake


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout  # logs go to stderr


def test_invoice_check_orders_and_reconcile(chain: FakeToncenter) -> None:
    out = _run("payments", "invoice", "tg:7", "node-month", "ton", "2.5")
    assert "amount=2500000000" in out and "Tonkeeper" in out
    [order] = json.loads(_run("payments", "orders", "--json"))
    assert order["state"] == "pending" and order["amount"] == "2.50 TON"
    chain.add_ton_transfer(SHOP_TON, 2_500_000_000, order["id"])
    chain.add_ton_transfer(SHOP_TON, 1_000_000_000, "a tip")
    checked = json.loads(_run("payments", "check", order["id"], "--json"))
    assert checked["state"] == "paid" and checked["tx_id"]
    paid = json.loads(_run("payments", "orders", "--state", "paid", "--json"))
    assert [o["id"] for o in paid] == [order["id"]]
    [stray] = json.loads(_run("payments", "reconcile", "--since", "1h", "--json"))
    assert stray["status"] == "unmatched" and stray["amount"] == "1.00 TON"
    assert "unmatched" in _run("payments", "reconcile")


def test_unknown_order_exits_with_the_fix(chain: FakeToncenter) -> None:
    result = CliRunner().invoke(app, ["payments", "check", "x0nothere"])
    assert result.exit_code != 0
    assert "no order" in str(result.exception)


def test_parse_since() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_since("36h", now) == now - timedelta(hours=36)
    assert parse_since("2026-01-01", now) == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ConfigError, match="neither a duration"):
        parse_since("yesterday", now)
