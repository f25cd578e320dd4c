"""The one adapter to the Telegram Bot API: building the Bot, retries, error mapping.

Every call the bot makes goes through :class:`RetryMiddleware`: a 429 waits
the ``retry_after`` Telegram asked for, 5xx and network errors back off
exponentially with jitter, and whatever still fails leaves as one of our own
errors (``RateLimitedError``, ``ExternalServiceError``, ``ConfigError``,
``MalformedResponseError``).  Code above this module never sees an aiogram
exception.  A retried send whose first attempt timed out after reaching
Telegram may show twice: a duplicate message beats a lost one.

It also keeps aiogram fast: aiogram validates every answer as
``Response[<return type>]``, a pydantic generic that pydantic caches only
weakly, so once the garbage collector frees it the next call rebuilds its
schema (milliseconds of CPU on the event loop, every time).  The middleware
holds one strong reference per method type.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response
from aiogram.utils.token import TokenValidationError

from x0tta6bl4 import loggers
from x0tta6bl4.errors import (
    ConfigError,
    ExternalServiceError,
    MalformedResponseError,
    RateLimitedError,
    X0Error,
)

__all__ = ["SERVICE", "RetryMiddleware", "make_bot", "redact"]

log = loggers.bot
SERVICE = "telegram"
_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")


def redact(text: str) -> str:
    """``text`` with anything shaped like a bot token replaced by ``***``."""
    return _TOKEN.sub("***", text)


def make_bot(
    token: str,
    api_base_url: str,
    *,
    retries: int = 5,
    backoff_max_s: float = 30.0,
    timeout_s: float = 60.0,
) -> Bot:
    """A Bot speaking to ``api_base_url`` (HTML texts), with retries and error mapping."""
    if not token:
        raise ConfigError(
            "no Telegram bot token is configured",
            fix="set X0_STOREFRONT__BOT_TOKEN to the token @BotFather gave you",
        )
    if not api_base_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"storefront.api_base_url {api_base_url!r} is not an http(s) URL",
            fix="use https://api.telegram.org or the URL of your local Bot API server",
        )
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_base_url), timeout=timeout_s)
    session.middleware(RetryMiddleware(retries, backoff_max_s))
    try:
        return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    except TokenValidationError:
        raise ConfigError(
            "storefront.bot_token is not shaped like a bot token (digits:letters)",
            fix="copy the token from @BotFather again into X0_STOREFRONT__BOT_TOKEN",
        ) from None


class RetryMiddleware(BaseRequestMiddleware):
    """Retries transient Bot API failures and maps the rest to :class:`X0Error`."""

    def __init__(self, retries: int, backoff_max_s: float, backoff_base_s: float = 0.5) -> None:
        self.retries = retries
        self.backoff_max_s = backoff_max_s
        self.backoff_base_s = backoff_base_s
        self.retried = 0
        """Retries made so far (for status and tests)."""
        self._answer_types: dict[type, type] = {}

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        kind = type(method)
        if kind not in self._answer_types:
            self._answer_types[kind] = Response[method.__returning__]  # see module docstring
        name = kind.__name__
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                delay = float(exc.retry_after)
                if attempt >= self.retries or delay > self.backoff_max_s:
                    raise RateLimitedError(SERVICE, delay) from exc
            except (TelegramNetworkError, TelegramServerError) as exc:
                if attempt >= self.retries:
                    raise _mapped(exc, name) from exc
                delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
                delay *= random.uniform(0.5, 1.0)
            except (TelegramAPIError, ClientDecodeError) as exc:
                raise _mapped(exc, name) from exc
            attempt += 1
            self.retried += 1
            log.warning("telegram_retry", method=name, attempt=attempt, delay_s=round(delay, 3))
            await asyncio.sleep(delay)


def _mapped(exc: Exception, method: str) -> X0Error:
    message = redact(getattr(exc, "message", None) or str(exc))
    if isinstance(exc, ClientDecodeError):
        return MalformedResponseError(
            f"Telegram answered {method} with something that is not a Bot API response",
            service=SERVICE,
            fix="check storefront.api_base_url points at a Bot API server",
            method=method,
        )
    if isinstance(exc, TelegramUnauthorizedError):
        return ConfigError(
            "Telegram rejected the bot token (401 Unauthorized)",
            fix="check X0_STOREFRONT__BOT_TOKEN against @BotFather",
            method=method,
        )
    status = 403 if isinstance(exc, TelegramForbiddenError) else None
    if isinstance(exc, TelegramBadRequest):
        status = 400
    elif isinstance(exc, TelegramServerError):
        status = 500
    return ExternalServiceError(
        f"Telegram {method} failed: {message}",
        service=SERVICE,
        status=status,
        fix="the user may have blocked the bot"
        if status == 403
        else "check the network and https://t.me/BotNews for outages",
        method=method,
        not_modified="message is not modified" in message,
    )
