"""``x0tta6bl4 bot`` as a process: serves buyers, verifies payments itself, stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import SHOP_TRON, FakeToncenter, FakeTronGrid
from tests.fakes.telegram import BOT_TOKEN, FakeUser, ThreadedFakeTelegram
from tests.helpers import wait_for
from x0tta6bl4.payments import Currency, parse_amount

pytestmark = pytest.mark.slow


def test_bot_command_sells_and_stops_on_sigterm(tmp_path: Path) -> None:
    with ThreadedFakeTelegram() as telegram, FakeTronGrid() as tron, FakeToncenter() as ton:
        tg = telegram.fake
        env = {
            **os.environ,
            "X0_DATA_DIR": str(tmp_path),
            "X0_STOREFRONT__BOT_TOKEN": BOT_TOKEN,
            "X0_STOREFRONT__API_BASE_URL": tg.base_url,
            "X0_STOREFRONT__POLLING_TIMEOUT_S": "1",
            "X0_PAYMENTS__TRON_ADDRESSES": f'["{SHOP_TRON}"]',
            "X0_PAYMENTS__TRONGRID_URL": tron.url,
            "X0_PAYMENTS__TRON_CONFIRMATIONS": "0",
            "X0_PAYMENTS__POLL_INTERVAL_S": "0.2",
            "X0_PAYMENTS__TONCENTER_URL": ton.url,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "x0tta6bl4", "--log-format", "json", "bot"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            buyer = FakeUser(777)
            telegram.call(tg.send_text(buyer, "/start"))
            # The process imports aiogram, pydantic and the payments stack first.
            catalog = wait_for(lambda: tg.chat(buyer.id), 120, message="the catalog")[0]
            assert "pay:" not in str(catalog.reply_markup)
            telegram.call(tg.press(buyer, catalog, "plan:SOLO"))
            wait_for(lambda: "pay:SOLO:usdt_trc20" in str(catalog.reply_markup), 30)
            assert "pay:SOLO:ton" not in str(catalog.reply_markup)  # no TON address configured
            telegram.call(tg.press(buyer, catalog, "pay:SOLO:usdt_trc20"))
            invoice = wait_for(
                lambda: next((m for m in tg.chat(buyer.id) if "chk:" in str(m.reply_markup)), None),
                30,
            )
            amount, address = (
                part.split("</code>")[0] for part in invoice.text.split("<code>")[1:3]
            )
            tron.add_transfer(address, parse_amount(amount, Currency.USDT_TRC20))
            wait_for(lambda: any("node join" in m.body for m in tg.chat(buyer.id)), 30)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "is up (polling)" in out and "storefront stopped" in out
    assert BOT_TOKEN.split(":")[1] not in out + err
