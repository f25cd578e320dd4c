"""The bot's own durable state in one SQLite file: FSM, invoices, users, seen updates.

Orders and payments live in the payments ledger; this file keeps what the bot
needs to carry on after a restart: each buyer's FSM state, which message shows
which invoice, whether a credential went out, and which updates were handled.

All SQLite work runs on one dedicated thread (one connection, WAL mode), so
the event loop never blocks on disk and no two statements race.

Writes whose outcome the caller does not need (FSM steps, the messages an
invoice is shown in, handled updates) are *written behind*: they
gather for ``WRITE_BATCH_S`` and go to disk in one transaction, so a buyer's
step waits for no disk and no thread hand-off.  Every job the thread runs
first applies the writes gathered before it, so a read always sees them, and
because the thread works in order, an update's "handled" mark reaches disk
only after everything its handler wrote: a crash loses at most the last
``WRITE_BATCH_S`` of work, and the updates of that work are handled again.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey

from x0tta6bl4 import loggers
from x0tta6bl4.errors import ConfigError

__all__ = ["BotStore", "InvoiceRecord", "SqliteStorage"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS fsm (
    key TEXT PRIMARY KEY, state TEXT, data TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS users (
    user_id INTEGER PRIMARY KEY, lang TEXT NOT NULL, first_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_updates (update_id INTEGER PRIMARY KEY, seen_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (
    order_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    chat_id INTEGER NOT NULL,
    lang TEXT NOT NULL,
    product_id TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount_text TEXT NOT NULL,
    address TEXT NOT NULL,
    comment TEXT,
    wallets TEXT NOT NULL DEFAULT '{}',
    expires_at REAL NOT NULL,
    message_id INTEGER,
    qr_message_id INTEGER,
    status TEXT NOT NULL DEFAULT 'open',
    delivery TEXT NOT NULL DEFAULT 'none',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_user ON invoices (user_id);
CREATE INDEX IF NOT EXISTS invoices_todo ON invoices (status, delivery)
    WHERE status = 'open' OR delivery != 'done';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

log = loggers.bot

WRITE_BATCH_S = 0.05
"""How long written-behind statements gather before one transaction writes them."""
SEEN_UPDATES_KEEP_S = 7 * 86400
"""How long handled update ids are remembered (Telegram re-sends for at most 24 h)."""


@dataclass(frozen=True)
class InvoiceRecord:
    """Where an order's invoice is shown and how far its delivery got."""

    order_id: str
    user_id: int
    chat_id: int
    lang: str
    product_id: str
    currency: str
    amount_text: str
    """The exact amount to send, as a decimal string without the symbol."""
    address: str
    comment: str | None
    wallets: str
    """JSON object of wallet name -> deep link, for the invoice keyboard."""
    expires_at: float
    """Unix seconds."""
    created_at: float
    message_id: int | None = None
    qr_message_id: int | None = None
    status: str = "open"
    """``open`` while the invoice awaits payment; the final order state once closed."""
    delivery: str = "none"
    """``none``, ``delivering`` (claimed by one sender) or ``done``.

    The token itself is not stored: it is re-derived from the order on demand.
    """


_INVOICE_COLUMNS = [f.name for f in fields(InvoiceRecord)]


class BotStore:
    """Async facade over the bot's SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="x0-bot-sqlite")
        self._conn: sqlite3.Connection | None = None
        self.replay_horizon = -1
        """The highest update id handled before this start (-1: none)."""
        self._behind: list[tuple[str, tuple[Any, ...]]] = []
        """Statements written behind, in order, not yet handed to the thread."""
        self._flushing: asyncio.Future[None] | None = None
        self._closed = False

    async def open(self) -> None:
        await self._run(self._open)
        rows = await self._rows("SELECT COALESCE(MAX(update_id), -1) FROM seen_updates")
        self.replay_horizon = int(rows[0][0])

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"bot state file {self.path} cannot be opened: {exc}",
                fix="set storefront.state_db to a writable path",
            ) from exc
        self._conn = conn

    async def close(self) -> None:
        self._closed = True
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the thread, after the statements written behind so far."""
        if self._closed and self._conn is None:
            raise ConfigError("bot state store is closed", fix="open a new BotStore")
        behind, self._behind = self._behind, []
        loop = asyncio.get_running_loop()
        if not behind:
            return await loop.run_in_executor(self._executor, fn, *args)

        def job() -> T:
            self._write_behind(behind)
            return fn(*args)

        return await loop.run_in_executor(self._executor, job)

    def _later(self, sql: str, params: tuple[Any, ...]) -> None:
        """Write a statement behind (see the module docstring).

        After :meth:`close` (a handler still running while the bot stops) the
        statement is dropped, as a crash would drop it: the update it belongs
        to is not marked handled either, so it is handled again after a start.
        """
        if self._closed:
            log.warning("bot_state_closed", dropped=sql.split("(")[0].strip())
            return
        self._behind.append((sql, params))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(WRITE_BATCH_S)
        if self._behind:
            try:
                await self._run(_nothing)
            except ConfigError:
                log.exception("bot_state_write_failed")

    def _write_behind(self, behind: list[tuple[str, tuple[Any, ...]]]) -> None:
        db = self._db()
        try:
            with db:
                db.execute("BEGIN IMMEDIATE")
                for sql, params in behind:
                    db.execute(sql, params)
        except sqlite3.Error as exc:
            raise ConfigError(
                f"bot state file {self.path} rejected {len(behind)} writes: {exc}",
                fix="check the disk has space and storefront.state_db is writable",
            ) from exc

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ConfigError("bot state store is not open", fix="call BotStore.open() first")
        return self._conn

    async def _exec(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run one write statement; return the number of rows it changed."""
        return await self._run(lambda: self._db().execute(sql, params).rowcount)

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return await self._run(lambda: self._db().execute(sql, params).fetchall())

    # FSM ---------------------------------------------------------------

    async def fsm_get(self, key: str) -> tuple[str | None, dict[str, Any]]:
        rows = await self._rows("SELECT state, data FROM fsm WHERE key = ?", (key,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else (None, {})

    def fsm_set_state(self, key: str, state: str | None) -> None:
        """Written behind."""
        self._later(
            "INSERT INTO fsm (key, state) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET state = excluded.state",
            (key, state),
        )

    def fsm_set_data(self, key: str, data: Mapping[str, Any]) -> None:
        """Written behind."""
        self._later(
            "INSERT INTO fsm (key, data) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET data = excluded.data",
            (key, json.dumps(dict(data))),
        )

    # Users and updates ---------------------------------------------------

    async def seen(self, update_id: int) -> bool:
        """Whether an update was handled before.

        Telegram re-sends the updates the bot had not confirmed when it
        stopped; this keeps a restart from handling a button press twice.
        Only ids up to the highest one handled before this start can be
        repeats, so newer ones need no lookup.
        """
        if update_id > self.replay_horizon:
            return False
        rows = await self._rows("SELECT 1 FROM seen_updates WHERE update_id = ?", (update_id,))
        return bool(rows)

    def mark_seen(self, update_id: int, user_id: int | None, lang: str) -> None:
        """Record a handled update, and its sender's language for later pushes.

        Written behind, after what the update's handler wrote; a crash before
        the batch reaches disk re-handles the update.
        """
        now = time.time()
        self._later("INSERT OR IGNORE INTO seen_updates VALUES (?, ?)", (update_id, now))
        if user_id is not None:
            self._later(
                "INSERT INTO users VALUES (?, ?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET lang = excluded.lang",
                (user_id, lang, now),
            )

    async def forget_old_updates(self, now: float | None = None) -> int:
        cutoff = (now or time.time()) - SEEN_UPDATES_KEEP_S
        return await self._exec("DELETE FROM seen_updates WHERE seen_at < ?", (cutoff,))

    async def get_meta(self, key: str) -> str | None:
        rows = await self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._exec(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def user_lang(self, user_id: int) -> str | None:
        rows = await self._rows("SELECT lang FROM users WHERE user_id = ?", (user_id,))
        return rows[0][0] if rows else None

    async def count_buyers(self) -> int:
        """Users who opened at least one invoice."""
        return int((await self._rows("SELECT count(DISTINCT user_id) FROM invoices"))[0][0])

    # Invoices ------------------------------------------------------------

    async def add_invoice(self, record: InvoiceRecord) -> None:
        """On disk before it returns, not written behind: the row is the only link
        from an order the ledger may see paid to the buyer's chat, so a crash after the
        buyer saw the invoice must not lose it (the delivery would have nowhere to go)."""
        marks = ", ".join("?" for _ in _INVOICE_COLUMNS)
        values = tuple(getattr(record, c) for c in _INVOICE_COLUMNS)
        await self._exec(
            f"INSERT OR REPLACE INTO invoices ({', '.join(_INVOICE_COLUMNS)}) VALUES ({marks})",
            values,
        )

    async def invoice(self, order_id: str) -> InvoiceRecord | None:
        rows = await self._select("WHERE order_id = ?", (order_id,))
        return rows[0] if rows else None

    async def open_invoices(self) -> list[InvoiceRecord]:
        """Invoices awaiting payment, and paid ones whose credential is not out yet."""
        return await self._select(
            "WHERE status = 'open' OR (status = 'paid' AND delivery != 'done')", ()
        )

    async def invoices_of(self, user_id: int) -> list[InvoiceRecord]:
        return await self._select("WHERE user_id = ? ORDER BY created_at", (user_id,))

    async def _select(self, where: str, params: tuple[Any, ...]) -> list[InvoiceRecord]:
        rows = await self._rows(
            f"SELECT {', '.join(_INVOICE_COLUMNS)} FROM invoices {where}", params
        )
        return [InvoiceRecord(*row) for row in rows]

    def set_messages(self, order_id: str, message_id: int, qr_message_id: int) -> None:
        """Written behind."""
        self._later(
            "UPDATE invoices SET message_id = ?, qr_message_id = ? WHERE order_id = ?",
            (message_id, qr_message_id, order_id),
        )

    async def close_invoice(self, order_id: str, status: str) -> bool:
        """Mark an open invoice final; False when it was closed already (by a racer)."""
        changed = await self._exec(
            "UPDATE invoices SET status = ? WHERE order_id = ? AND status = 'open'",
            (status, order_id),
        )
        return changed > 0

    async def claim_delivery(self, order_id: str) -> bool:
        """Take the right to deliver an order's credential; True for exactly one caller.

        A delivery a crash interrupted is put back by :meth:`reclaim_interrupted`.
        """
        changed = await self._exec(
            "UPDATE invoices SET delivery = 'delivering' WHERE order_id = ? AND delivery = 'none'",
            (order_id,),
        )
        return changed > 0

    async def finish_delivery(self, order_id: str) -> None:
        await self._exec("UPDATE invoices SET delivery = 'done' WHERE order_id = ?", (order_id,))

    async def release_delivery(self, order_id: str) -> None:
        """Give a claimed delivery back after a failed send, so it is retried."""
        await self._exec(
            "UPDATE invoices SET delivery = 'none' WHERE order_id = ? AND delivery = 'delivering'",
            (order_id,),
        )

    async def reclaim_interrupted(self) -> int:
        """At start-up: deliveries a crash left half-done go back to the queue."""
        return await self._exec(
            "UPDATE invoices SET delivery = 'none' WHERE delivery = 'delivering'"
        )

    async def delivered_count(self) -> int:
        rows = await self._rows("SELECT count(*) FROM invoices WHERE delivery = 'done'")
        return int(rows[0][0])


class SqliteStorage(BaseStorage):
    """aiogram FSM storage on :class:`BotStore`: a restart keeps every buyer's step.

    Writes go to SQLite behind (see :class:`BotStore`); reads are served from a
    write-through cache of the most recent ``cache_size`` keys (this process
    is the only writer).
    """

    def __init__(self, store: BotStore, cache_size: int = 10_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._keys = DefaultKeyBuilder(with_destiny=True, with_bot_id=True)
        self._cache: OrderedDict[str, tuple[str | None, dict[str, Any]]] = OrderedDict()

    async def _get(self, key: StorageKey) -> tuple[str, str | None, dict[str, Any]]:
        built = self._keys.build(key)
        entry = self._cache.pop(built, None)
        if entry is None:
            entry = await self.store.fsm_get(built)
        self._remember(built, entry)
        return built, entry[0], entry[1]

    def _remember(self, built: str, entry: tuple[str | None, dict[str, Any]]) -> None:
        self._cache[built] = entry
        self._cache.move_to_end(built)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        built, _, data = await self._get(key)
        self.store.fsm_set_state(built, value)
        self._remember(built, (value, data))

    async def get_state(self, key: StorageKey) -> str | None:
        return (await self._get(key))[1]

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        built, state, _ = await self._get(key)
        self.store.fsm_set_data(built, data)
        self._remember(built, (state, dict(data)))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        return dict((await self._get(key))[2])

    async def close(self) -> None:
        """The store is closed by its owner, after the dispatcher stops."""


def _nothing() -> None:
    """A job that only applies the statements written behind before it."""
