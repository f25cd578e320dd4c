"""The bot's SQLite state: FSM across reopen, one delivery per order, seen updates."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest
from aiogram.fsm.storage.base import StorageKey

from tests.helpers import async_wait_for
from x0tta6bl4.errors import ConfigError
from x0tta6bl4.storefront.handlers import Buy
from x0tta6bl4.storefront.store import BotStore, InvoiceRecord, SqliteStorage

KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)


def _invoice(order_id: str = "x0abcdefgh", **kw: object) -> InvoiceRecord:
    values: dict[str, object] = {
        "order_id": order_id,
        "user_id": 42,
        "chat_id": 42,
        "lang": "en",
        "product_id": "SOLO",
        "currency": "ton",
        "amount_text": "1.5",
        "address": "EQ...",
        "comment": order_id,
        "wallets": "{}",
        "expires_at": time.time() + 900,
        "created_at": time.time(),
    }
    values.update(kw)
    return InvoiceRecord(**values)  # type: ignore[arg-type]


async def test_fsm_state_and_data_survive_a_reopen(tmp_path: Path) -> None:
    store = BotStore(tmp_path / "bot.sqlite3")
    await store.open()
    fsm = SqliteStorage(store)
    await fsm.set_state(KEY, Buy.paying)
    await fsm.set_data(KEY, {"order": "x0abcdefgh", "plan": "SOLO"})
    await store.close()

    reopened = BotStore(tmp_path / "bot.sqlite3")
    await reopened.open()
    fsm = SqliteStorage(reopened)
    assert await fsm.get_state(KEY) == Buy.paying.state
    assert await fsm.get_data(KEY) == {"order": "x0abcdefgh", "plan": "SOLO"}
    assert await fsm.get_state(StorageKey(bot_id=1, chat_id=7, user_id=7)) is None
    await fsm.set_state(KEY, None)
    assert await fsm.get_state(KEY) is None
    assert (await fsm.get_data(KEY))["plan"] == "SOLO"
    await reopened.close()


async def test_exactly_one_of_many_concurrent_claims_wins(tmp_path: Path) -> None:
    store = BotStore(tmp_path / "bot.sqlite3")
    await store.open()
    await store.add_invoice(_invoice())
    wins = await asyncio.gather(*(store.claim_delivery("x0abcdefgh") for _ in range(20)))
    assert wins.count(True) == 1
    await store.release_delivery("x0abcdefgh")  # the send failed: someone may try again
    assert await store.claim_delivery("x0abcdefgh")
    assert await store.reclaim_interrupted() == 1  # a crash left it half-done
    assert await store.claim_delivery("x0abcdefgh")
    await store.finish_delivery("x0abcdefgh")
    assert not await store.claim_delivery("x0abcdefgh")
    assert await store.delivered_count() == 1
    await store.close()


async def test_open_invoices_and_closing_once(tmp_path: Path) -> None:
    store = BotStore(tmp_path / "bot.sqlite3")
    await store.open()
    await store.add_invoice(_invoice("x0aaaaaaaa"))
    await store.add_invoice(_invoice("x0bbbbbbbb", user_id=43))
    store.set_messages("x0aaaaaaaa", 10, 9)
    assert {r.order_id for r in await store.open_invoices()} == {"x0aaaaaaaa", "x0bbbbbbbb"}
    assert await store.close_invoice("x0aaaaaaaa", "paid")
    assert not await store.close_invoice("x0aaaaaaaa", "expired")
    record = await store.invoice("x0aaaaaaaa")
    assert record is not None and (record.status, record.message_id) == ("paid", 10)
    # Paid but not yet delivered stays on the to-do list.
    assert {r.order_id for r in await store.open_invoices()} == {"x0aaaaaaaa", "x0bbbbbbbb"}
    assert await store.claim_delivery("x0aaaaaaaa")
    await store.finish_delivery("x0aaaaaaaa")
    assert [r.order_id for r in await store.open_invoices()] == ["x0bbbbbbbb"]
    assert await store.count_buyers() == 2
    assert [r.order_id for r in await store.invoices_of(43)] == ["x0bbbbbbbb"]
    await store.close()


async def test_seen_updates_users_and_meta(tmp_path: Path) -> None:
    store = BotStore(tmp_path / "bot.sqlite3")
    await store.open()
    assert not await store.seen(5)
    store.mark_seen(5, 42, "ru")
    store.mark_seen(5, 42, "ru")
    store.mark_seen(6, None, "en")
    await store.close()  # writes the batched marks

    store = BotStore(tmp_path / "bot.sqlite3")
    await store.open()
    assert store.replay_horizon == 6
    assert await store.seen(5) and await store.seen(6) and not await store.seen(4)
    assert not await store.seen(7)  # newer than anything handled before: no lookup
    assert await store.user_lang(42) == "ru"
    assert await store.forget_old_updates(now=time.time() + 30 * 86400) == 2
    assert not await store.seen(5)
    assert await store.get_meta("cursor") is None
    await store.set_meta("cursor", "7")
    await store.set_meta("cursor", "8")
    assert await store.get_meta("cursor") == "8"
    await store.close()


async def test_unwritable_location_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = BotStore(blocker / "bot.sqlite3")
    with pytest.raises(ConfigError, match="cannot be opened"):
        await store.open()
    await store.close()


async def test_writes_behind_are_read_back_at_once_and_reach_disk_together(
    tmp_path: Path,
) -> None:
    store = BotStore(tmp_path / "bot.sqlite3")
    await store.open()
    fsm = SqliteStorage(store, cache_size=0)  # every read goes to the store
    await store.add_invoice(_invoice())
    await fsm.set_state(KEY, Buy.paying)
    store.mark_seen(9, 42, "en")
    # Another process sees nothing yet: a crash now would re-handle update 9 from scratch.
    disk = sqlite3.connect(tmp_path / "bot.sqlite3")
    # The invoice is durable at once: a paid order must always find its buyer's chat.
    assert disk.execute("SELECT count(*) FROM invoices").fetchone() == (1,)
    assert disk.execute("SELECT count(*) FROM seen_updates").fetchone() == (0,)
    # This process reads its own writes: the read job applies them first.
    assert await fsm.get_state(KEY) == Buy.paying.state
    assert (await store.invoice("x0abcdefgh")) is not None
    counts = "SELECT (SELECT count(*) FROM invoices), (SELECT count(*) FROM seen_updates)"
    assert disk.execute(counts).fetchone() == (1, 1)
    store.mark_seen(10, 42, "en")

    # Written behind within WRITE_BATCH_S, without anyone reading.
    async def written() -> bool:
        return bool(disk.execute(counts).fetchone() == (1, 2))

    await async_wait_for(written, timeout_s=5)
    disk.close()
    await store.close()
