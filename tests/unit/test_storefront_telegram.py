"""The Telegram adapter: retries and error mapping, against the loopback Bot API server."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.methods import Response
from aiogram.types import Message

from tests.fakes.telegram import BOT_TOKEN, FakeTelegram
from x0tta6bl4.errors import (
    ConfigError,
    ExternalServiceError,
    RateLimitedError,
)
from x0tta6bl4.storefront.telegram import make_bot, redact


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    bot = make_bot(BOT_TOKEN, tg.base_url, retries=2, backoff_max_s=2)
    yield bot
    await bot.session.close()


async def test_429_waits_retry_after_then_succeeds(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", retry_after=1, times=2)
    message = await bot.send_message(1, "hello")
    assert message.text == "hello"
    calls = [c.at for c in tg.calls if c.method == "sendMessage"]
    assert len(calls) == 3 and calls[2] - calls[0] >= 1.9


async def test_429_beyond_the_budget_is_rate_limited_error(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("sendMessage", retry_after=30, times=1)
    with pytest.raises(RateLimitedError) as exc:
        await bot.send_message(1, "hello")
    assert exc.value.retry_after_s == 30 and exc.value.service == "telegram"
    assert tg.count("sendMessage") == 1  # 30 s is more than api_backoff_max_s: no wait


async def test_network_and_server_errors_back_off_then_map(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail("getMe", code=None, times=1)
    tg.fail("getMe", code=500, description="Internal Server Error", times=1)
    assert (await bot.get_me()).username == "x0_test_bot"
    tg.fail("getMe", code=None, times=3)
    with pytest.raises(ExternalServiceError, match="ServerDisconnected") as exc:
        await bot.get_me()
    assert not isinstance(exc.value, RateLimitedError)


async def test_client_errors_are_not_retried(tg: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(ExternalServiceError, match="can't parse entities") as exc:
        await bot.send_message(1, "<b>unclosed")
    assert exc.value.status == 400 and tg.count("sendMessage") == 1
    sent = await bot.send_message(1, "same")
    with pytest.raises(ExternalServiceError) as not_modified:
        await bot.edit_message_text("same", chat_id=1, message_id=sent.message_id)
    assert not_modified.value.context["not_modified"] is True
    tg.fail("sendMessage", code=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(ExternalServiceError, match="blocked") as blocked:
        await bot.send_message(1, "x")
    assert blocked.value.status == 403


async def test_token_problems_are_config_errors(tg: FakeTelegram) -> None:
    with pytest.raises(ConfigError, match="no Telegram bot token"):
        make_bot("", tg.base_url)
    with pytest.raises(ConfigError, match="not shaped like a bot token"):
        make_bot("not a token", tg.base_url)
    with pytest.raises(ConfigError, match="not an http"):
        make_bot(BOT_TOKEN, "ftp://x")
    stranger = make_bot("1:unknown-token-unknown-token", tg.base_url)
    with pytest.raises(ConfigError, match="rejected the bot token"):
        await stranger.get_me()
    await stranger.session.close()


async def test_answer_models_survive_garbage_collection(bot: Bot) -> None:
    """aiogram's Response[Message] must not be rebuilt after every GC (tens of ms each)."""
    await bot.send_message(1, "hello")
    answer_type = weakref.ref(Response[Message])
    gc.collect()
    assert answer_type() is not None
    assert (await bot.send_message(1, "again")).text == "again"
    assert Response[Message] is answer_type()


def test_redact_hides_anything_shaped_like_a_token() -> None:
    assert redact(f"GET /bot{BOT_TOKEN}/getMe failed") == "GET /bot***/getMe failed"
    assert redact("order x0abc paid 12.5") == "order x0abc paid 12.5"
