"""What every handler and background task of the bot shares, and safe ways to talk.

:class:`Shop` holds the catalog, the stores, the payments port, the issuer
key, the limits and the Bot.  Its ``send``/``edit`` helpers turn a failed
Telegram call (the buyer blocked the bot, a message vanished) into a log line
and a ``None`` instead of an exception, because one buyer's broken chat must
not stop the others' deliveries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from x0tta6bl4 import loggers
from x0tta6bl4.config import StorefrontSettings
from x0tta6bl4.errors import ExternalServiceError
from x0tta6bl4.payments import Order
from x0tta6bl4.storefront.catalog import Catalog
from x0tta6bl4.storefront.limits import Cooldown, RateLimiter
from x0tta6bl4.storefront.ports import PaymentsPort
from x0tta6bl4.storefront.store import BotStore

__all__ = ["PerChatIsolation", "Shop", "customer_id", "user_of"]

log = loggers.bot

_CUSTOMER_PREFIX = "tg:"


def customer_id(user_id: int) -> str:
    """The ledger's customer id for a Telegram user."""
    return f"{_CUSTOMER_PREFIX}{user_id}"


def user_of(customer: str) -> int | None:
    """The Telegram user id behind a ledger customer id, if it is one of ours."""
    raw = customer.removeprefix(_CUSTOMER_PREFIX)
    return int(raw) if customer.startswith(_CUSTOMER_PREFIX) and raw.isdigit() else None


class PerChatIsolation(BaseEventIsolation):
    """One update at a time per buyer, so FSM steps and double taps never race.

    Like aiogram's ``SimpleEventIsolation``, but a lock lives only while
    someone holds or waits for it, so memory does not grow with every buyer.
    """

    def __init__(self) -> None:
        self._locks: dict[StorageKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def close(self) -> None:
        self._locks.clear()


@dataclass
class Shop:
    settings: StorefrontSettings
    catalog: Catalog
    store: BotStore
    payments: PaymentsPort
    issuer: Ed25519PrivateKey
    bot: Bot
    currencies: list[str]
    """Currencies offered, in button order (configured and payable)."""
    clock: Callable[[], float] = time.time
    rate: RateLimiter = field(init=False)
    check_cooldown: Cooldown = field(init=False)
    counters: dict[str, int] = field(default_factory=dict)
    _checks: dict[str, asyncio.Future[Order]] = field(default_factory=dict)
    _warned_at: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rate = RateLimiter(self.settings.user_rate_per_min, self.settings.user_burst)
        self.check_cooldown = Cooldown(self.settings.check_cooldown_s)

    async def check(self, order_id: str, address: str) -> Order:
        """Poll the chain for an order, sharing a poll already running for its address.

        A chain poll reads every payment to one receiving address, so buyers
        pressing "Check payment" together need one poll, not one each.
        """
        running = self._checks.get(address)
        if running is not None and not running.done():
            await asyncio.shield(running)
            return await self.payments.get_order(order_id)
        poll = asyncio.ensure_future(self.payments.check(order_id))
        self._checks[address] = poll
        poll.add_done_callback(
            lambda done: self._checks.pop(address) if self._checks.get(address) is done else None
        )
        return await asyncio.shield(poll)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.settings.admin_ids

    def should_warn(self, user_id: int, every_s: float = 10.0) -> bool:
        """True at most once per ``every_s`` per user (the "slow down" reply)."""
        now = time.monotonic()
        if now - self._warned_at.get(user_id, -every_s) < every_s:
            return False
        if len(self._warned_at) > 10_000:
            self._warned_at = {k: v for k, v in self._warned_at.items() if now - v < every_s}
        self._warned_at[user_id] = now
        return True

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def send(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        try:
            return await self.bot.send_message(chat_id, text, reply_markup=markup)
        except ExternalServiceError as exc:
            self._failed("send_message", chat_id, exc)
            return None

    async def send_photo(self, chat_id: int, png: bytes, caption: str) -> Message | None:
        try:
            return await self.bot.send_photo(
                chat_id, BufferedInputFile(png, filename="invoice-qr.png"), caption=caption
            )
        except ExternalServiceError as exc:
            self._failed("send_photo", chat_id, exc)
            return None

    async def edit(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        markup: InlineKeyboardMarkup | None = None,
    ) -> bool:
        """Edit a text message; True when it now shows ``text`` (unchanged counts)."""
        try:
            await self.bot.edit_message_text(
                text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            )
        except ExternalServiceError as exc:
            if exc.context.get("not_modified"):
                return True
            self._failed("edit_message", chat_id, exc)
            return False
        return True

    async def drop_markup(self, chat_id: int, message_id: int) -> None:
        try:
            await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
        except ExternalServiceError as exc:
            if not exc.context.get("not_modified"):
                self._failed("edit_markup", chat_id, exc)

    async def delete(self, chat_id: int, message_id: int | None) -> None:
        if message_id is None:
            return
        try:
            await self.bot.delete_message(chat_id, message_id)
        except ExternalServiceError as exc:
            self._failed("delete_message", chat_id, exc)

    async def answer(self, query_id: str, text: str | None = None) -> None:
        try:
            await self.bot.answer_callback_query(query_id, text=text)
        except ExternalServiceError as exc:
            self._failed("answer_callback", None, exc)

    def _failed(self, what: str, chat_id: int | None, exc: ExternalServiceError) -> None:
        self.count("telegram_errors")
        log.warning(what + "_failed", chat=chat_id, status=exc.status, error=exc.message)

    def status(self) -> dict[str, Any]:
        return {"plans": len(self.catalog), **self.counters}
