"""The gate every update passes: dedupe, language, per-user rate limit, error reply.

Runs as an outer middleware on ``dispatcher.update``, after aiogram has
resolved the user and before any handler or FSM access.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from x0tta6bl4 import loggers
from x0tta6bl4.storefront.shop import Shop
from x0tta6bl4.storefront.telegram import redact
from x0tta6bl4.storefront.texts import lang_of, t

__all__ = ["GateMiddleware", "reply_error"]

log = loggers.bot


class GateMiddleware(BaseMiddleware):
    """Drops updates handled before and users over their rate; puts ``lang`` in the data.

    An update is marked handled only after its handler ran, so one that a
    crash interrupted is handled again when Telegram re-sends it.
    """

    def __init__(self, shop: Shop) -> None:
        self.shop = shop

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        shop = self.shop
        user: User | None = data.get("event_from_user")
        lang = lang_of(user.language_code if user else None)
        data["lang"] = lang
        if await shop.store.seen(event.update_id):
            shop.count("duplicate_updates")
            return None
        shop.count("updates")
        user_id = user.id if user else None
        if user is not None and not shop.rate.allow(user.id):
            shop.count("rate_limited")
            log.info("rate_limited", user=user.id)
            await self._slow_down(event, user, lang)
            shop.store.mark_seen(event.update_id, user_id, lang)
            return None
        try:
            result = await handler(event, data)
        except asyncio.CancelledError:
            raise  # shutting down: left unmarked, so it is handled after the restart
        except Exception:
            shop.store.mark_seen(event.update_id, user_id, lang)
            raise
        shop.store.mark_seen(event.update_id, user_id, lang)
        return result

    async def _slow_down(self, update: Update, user: User, lang: str) -> None:
        if update.callback_query is not None:
            await self.shop.answer(update.callback_query.id, t(lang, "slow_down"))
        elif update.message is not None and self.shop.should_warn(user.id):
            await self.shop.send(update.message.chat.id, t(lang, "slow_down"))


async def reply_error(shop: Shop, update: Update, exc: Exception) -> None:
    """Tell the user something failed on our side (the error is logged by the caller)."""
    user = update.callback_query.from_user if update.callback_query else None
    if update.message is not None:
        user = update.message.from_user
    lang = lang_of(user.language_code if user else None)
    if update.callback_query is not None:
        await shop.answer(update.callback_query.id, t(lang, "error"))
    elif update.message is not None:
        await shop.send(update.message.chat.id, t(lang, "error"))
    log.debug("error_replied", update=update.update_id, error=redact(str(exc)))
