"""Telegram failing (429, dropped connections), users flooding, secrets, and the webhook."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.telegram import BOT_TOKEN, FakeUser
from tests.integration._storefront_rig import ADMIN, ShopRig
from x0tta6bl4.errors import ConfigError
from x0tta6bl4.storefront.service import WEBHOOK_PATH


async def test_429_and_dropped_connections_are_retried(tmp_path: Path) -> None:
    async with ShopRig(tmp_path) as rig:
        await rig.start_bot()
        buyer = FakeUser(9100)
        rig.tg.fail("sendMessage", retry_after=1, times=2)
        rig.tg.fail("sendPhoto", code=None, times=1)
        rig.tg.fail("getUpdates", code=None, times=1)
        rig.tg.fail("getUpdates", code=502, description="Bad Gateway", times=1)
        invoice, order = await rig.buy(buyer, "SOLO")
        assert order.id in invoice.text
        await rig.tg.wait_message(buyer.id, "Scan to pay", photo=True)
        sends = [c for c in rig.tg.calls if c.method == "sendMessage"]
        assert sends[1].at - sends[0].at >= 0.9  # waited the retry_after Telegram asked for
        assert rig.bot is not None and rig.bot.status()["plans"] == 4


async def test_flooding_user_is_slowed_down_and_others_are_served(tmp_path: Path) -> None:
    async with ShopRig(tmp_path, {"user_burst": 5, "user_rate_per_min": 6}) as rig:
        await rig.start_bot()
        flooder, calm = FakeUser(9200), FakeUser(9201)
        for i in range(40):
            await rig.tg.send_text(flooder, f"spam {i}")
        await rig.tg.send_text(calm, "/help")
        await rig.tg.wait_message(calm.id, "/orders")
        await rig.tg.wait_message(flooder.id, "Too many requests")
        assert rig.bot is not None
        await rig.tg.wait_for(
            lambda: rig.bot.status().get("rate_limited", 0) >= 30, what="40 updates handled"
        )
        replies = rig.tg.chat(flooder.id)
        assert 5 <= len([m for m in replies if "did not understand" in m.body]) <= 7
        assert len([m for m in replies if "Too many requests" in m.body]) == 1


async def test_bot_token_never_reaches_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = BOT_TOKEN.split(":")[1]
    async with ShopRig(tmp_path, {"api_retries": 2}) as rig:
        await rig.start_bot()
        buyer = FakeUser(9300)
        rig.tg.fail("sendMessage", retry_after=1, times=1)
        rig.tg.fail("answerCallbackQuery", code=400, description=f"Bad Request: {BOT_TOKEN}")
        _invoice, order = await rig.buy(buyer, "SOLO")
        rig.pay(order)
        await rig.tg.wait_message(buyer.id, "node join", timeout_s=15)
        await rig.tg.wait_message(ADMIN, "Sale")
        sent = rig.tg.count("sendMessage")
        rig.tg.fail("sendMessage", code=None, times=3)
        await rig.tg.send_text(buyer, "/help")
        await rig.tg.wait_for(lambda: rig.tg.count("sendMessage") >= sent + 3, what="retries")
        await rig.tg.wait_for(lambda: "send_message_failed" in caplog.text, what="given up")
        assert secret not in str(rig.bot.status() if rig.bot else "")
    assert "telegram_retry" in caplog.text
    assert secret not in caplog.text
    assert secret not in repr(rig.settings)


async def test_webhook_mode_takes_updates_with_the_secret_only(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    webhook = {
        "webhook_url": f"http://127.0.0.1:{port}",
        "webhook_port": port,
        "webhook_secret": "s3cret-Webhook_token",
    }
    async with ShopRig(tmp_path, webhook) as rig:
        await rig.start_bot()
        assert rig.bot is not None and rig.bot.status()["mode"] == "webhook"
        assert rig.tg.webhook["url"] == f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        buyer = FakeUser(9400)
        await rig.tg.send_text(buyer, "/start")
        await rig.tg.wait_message(buyer.id, "x0tta6bl4")
        assert rig.tg.count("getUpdates") == 0
        async with aiohttp.ClientSession() as http:
            forged = {"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "/start",
                      "chat": {"id": 1, "type": "private"}}}  # fmt: skip
            async with http.post(
                f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
                json=forged,
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            ) as resp:
                assert resp.status == 401
        assert not rig.tg.chat(1)


async def test_webhook_without_a_secret_is_refused(tmp_path: Path) -> None:
    async with ShopRig(tmp_path, {"webhook_url": "https://shop.example/hook"}) as rig:
        with pytest.raises(ConfigError, match="webhook_secret is empty"):
            await rig.start_bot()


async def test_wrong_token_is_a_config_error(tmp_path: Path) -> None:
    async with ShopRig(
        tmp_path, {"bot_token": "42:wrong-token-that-telegram-does-not-know"}
    ) as rig:
        with pytest.raises(ConfigError, match="rejected the bot token"):
            await rig.start_bot()
