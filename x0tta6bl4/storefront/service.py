"""The storefront as one service: the bot, its background tasks, polling or a webhook.

:class:`Storefront` is what both entry points run: ``x0tta6bl4 bot``
(standalone, :func:`serve`) and the ``Storefront`` Ray actor.  Background
tasks (ledger events, countdowns, reconciliation) are loops that never die:
each round's failure is logged and the loop goes on.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Dispatcher
from aiogram.types import BotCommand
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from x0tta6bl4 import loggers
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ConfigError, X0Error
from x0tta6bl4.identity.credentials import load_or_create_issuer_key, public_key_hex
from x0tta6bl4.payments import PaymentService, ledger_db_path
from x0tta6bl4.storefront.catalog import Catalog, load_catalog
from x0tta6bl4.storefront.fulfilment import Fulfilment
from x0tta6bl4.storefront.handlers import Flow, build_router
from x0tta6bl4.storefront.invoices import Invoices
from x0tta6bl4.storefront.middlewares import GateMiddleware
from x0tta6bl4.storefront.paths import join_key_path, state_db_path
from x0tta6bl4.storefront.ports import PaymentsPort
from x0tta6bl4.storefront.shop import PerChatIsolation, Shop
from x0tta6bl4.storefront.store import BotStore, SqliteStorage
from x0tta6bl4.storefront.telegram import make_bot, redact
from x0tta6bl4.storefront.texts import TEXTS, t

__all__ = ["Storefront", "serve"]

log = loggers.bot

WEBHOOK_PATH = "/telegram/webhook"
_COMMANDS = ("start", "orders", "help", "support")
_FORGET_EVERY_S = 3600.0
GIL_SWITCH_INTERVAL_S = 0.001
"""The bot process's GIL switch interval (Python's default is 5 ms)."""


async def serve(
    settings: Settings,
    stop: asyncio.Event,
    *,
    payments: PaymentsPort | None = None,
    on_ready: Callable[[Storefront], object] | None = None,
) -> None:
    """Run the storefront until ``stop`` is set.

    Without ``payments`` it owns an in-process PaymentService on the
    configured ledger file and runs its verification and expiry loop too
    (the standalone ``x0tta6bl4 bot``); with one, the caller runs it.
    """
    service: PaymentService | None = None
    if payments is None:
        service = payments = PaymentService(settings.payments, ledger_db_path(settings))
    storefront = Storefront(settings, payments)
    # Start-up leaves ~300k long-lived objects (aiogram's types, pydantic
    # schemas); frozen, a full collection skips them: a millisecond instead
    # of up to a second of pause on the event loop under load.  (No collection
    # first: it would cost that second at start for a little memory.)
    gc.freeze()
    # The loop thread is busy under load while the SQLite and QR threads need
    # the GIL for a moment per statement; with the default 5 ms switch interval
    # each of those moments could wait 5 ms for the loop to let go.
    sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
    verifying = asyncio.create_task(service.run(stop)) if service is not None else None
    try:
        await storefront.start()
        if on_ready is not None:
            on_ready(storefront)
        await stop.wait()
    finally:
        await storefront.stop()
        if verifying is not None:
            verifying.cancel()
            await asyncio.gather(verifying, return_exceptions=True)
        if service is not None:
            await service.close()


class Storefront:
    """The Telegram bot selling mesh access, wired to a payments service.

    Args:
        settings: the whole configuration (``storefront`` and ``data_dir``).
        payments: a PaymentService (or anything with its interface).
        clock: Unix-time clock for countdowns and expiry checks.
    """

    def __init__(
        self, settings: Settings, payments: PaymentsPort, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.payments = payments
        self.clock = clock
        self.shop: Shop | None = None
        self.mode = "webhook" if settings.storefront.webhook_url else "polling"
        self.username: str | None = None
        self.currencies: list[str] = []
        self.webhook_port: int | None = None
        self._dispatcher: Dispatcher | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._store: BotStore | None = None

    async def start(self) -> None:
        """Connect to Telegram and start taking updates; raises X0Error when it cannot."""
        sf = self.settings.storefront
        if self.mode == "webhook" and not sf.webhook_secret.get_secret_value():
            raise ConfigError(
                "storefront.webhook_url is set but storefront.webhook_secret is empty",
                fix="set X0_STOREFRONT__WEBHOOK_SECRET to a random string (1-256 of A-Za-z0-9_-)",
            )
        self.currencies = self._offered()
        catalog = await asyncio.to_thread(load_catalog, sf.products_file)
        issuer = await asyncio.to_thread(load_or_create_issuer_key, join_key_path(self.settings))
        self._store = store = BotStore(state_db_path(self.settings))
        try:
            await store.open()
            await self._start_bot(catalog, issuer, store)
        except BaseException:
            await self.stop()
            raise
        log.info(
            "storefront_started",
            bot=self.username,
            mode=self.mode,
            plans=len(catalog),
            issuer_key=public_key_hex(issuer),
        )

    def _offered(self) -> list[str]:
        """The configured currencies the payments side can actually take, in order."""
        takes = {c.value for c in self.payments.currencies()}
        offered: list[str] = [c for c in self.settings.storefront.currencies if c in takes]
        if not offered:
            raise ConfigError(
                f"none of storefront.currencies ({', '.join(self.settings.storefront.currencies)})"
                f" has a receiving address (payments take: {', '.join(sorted(takes)) or 'none'})",
                fix="set payments.tron_addresses and/or payments.ton_addresses",
            )
        return offered

    async def _start_bot(
        self, catalog: Catalog, issuer: Ed25519PrivateKey, store: BotStore
    ) -> None:
        sf = self.settings.storefront
        bot = make_bot(
            sf.bot_token.get_secret_value(),
            sf.api_base_url,
            retries=sf.api_retries,
            backoff_max_s=sf.api_backoff_max_s,
        )
        self.shop = shop = Shop(
            sf, catalog, store, self.payments, issuer, bot, self.currencies, self.clock
        )
        me = await bot.get_me()
        self.username = me.username
        reclaimed = await store.reclaim_interrupted()
        if reclaimed:
            log.warning("deliveries_resumed", count=reclaimed)
        invoices = Invoices(shop)
        fulfilment = Fulfilment(shop, invoices)
        dp = Dispatcher(storage=SqliteStorage(store), events_isolation=PerChatIsolation())
        dp["shop"] = shop
        dp["flow"] = Flow(invoices, fulfilment)
        dp.update.outer_middleware(GateMiddleware(shop))
        dp.include_router(build_router())
        self._dispatcher = dp
        await self._set_commands()
        self._spawn("events", self._forever("events", fulfilment.follow_events, 1.0))
        self._spawn(
            "countdown",
            self._forever("countdown", invoices.refresh_countdowns, sf.countdown_interval_s),
        )
        self._spawn(
            "reconcile",
            self._forever("reconcile", self._reconcile(fulfilment), sf.reconcile_interval_s),
        )
        if self.mode == "webhook":
            await self._start_webhook(dp)
        else:
            await bot.delete_webhook(drop_pending_updates=False)
            self._spawn(
                "polling",
                dp.start_polling(
                    bot,
                    polling_timeout=sf.polling_timeout_s,
                    handle_signals=False,
                    close_bot_session=False,
                ),
            )

    async def _set_commands(self) -> None:
        assert self.shop is not None
        bot = self.shop.bot
        for lang in TEXTS:
            commands = [BotCommand(command=c, description=t(lang, f"cmd_{c}")) for c in _COMMANDS]
            await bot.set_my_commands(commands, language_code=None if lang == "en" else lang)

    async def _start_webhook(self, dp: Dispatcher) -> None:
        assert self.shop is not None
        sf = self.settings.storefront
        app = web.Application()
        SimpleRequestHandler(
            dp, self.shop.bot, secret_token=sf.webhook_secret.get_secret_value()
        ).register(app, path=WEBHOOK_PATH)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, sf.webhook_host, sf.webhook_port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot listen for the webhook on {sf.webhook_host}:{sf.webhook_port}: "
                f"{exc.strerror}",
                fix="pick a free port with --set storefront.webhook_port=N",
            ) from exc
        self.webhook_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = sf.webhook_url.rstrip("/")
        if not url.endswith(WEBHOOK_PATH):
            url += WEBHOOK_PATH
        await self.shop.bot.set_webhook(
            url,
            secret_token=sf.webhook_secret.get_secret_value(),
            allowed_updates=dp.resolve_used_update_types(),
        )

    def _reconcile(self, fulfilment: Fulfilment) -> Callable[[], Awaitable[object]]:
        last_forget = 0.0

        async def round_() -> None:
            nonlocal last_forget
            await fulfilment.reconcile()
            if self._store is not None and time.monotonic() - last_forget > _FORGET_EVERY_S:
                last_forget = time.monotonic()
                await self._store.forget_old_updates()

        return round_

    async def _forever(
        self, name: str, fn: Callable[[], Awaitable[object]], interval_s: float
    ) -> None:
        """Run ``fn`` every ``interval_s`` until cancelled; a failed round is logged."""
        while True:
            started = time.monotonic()
            try:
                await fn()
            except X0Error as exc:
                log.error("background_failed", task=name, error=redact(str(exc)))
            except Exception:
                log.exception("background_failed", task=name)
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))

    def _spawn(self, name: str, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"storefront-{name}")
        self._tasks.append(task)

    def status(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"mode": self.mode, "bot": self.username}
        if self.shop is not None:
            detail.update(self.shop.status())
        return detail

    async def stop(self) -> None:
        """Stop taking updates, end the background tasks, close the bot and the store."""
        if self._dispatcher is not None and self.mode == "polling":
            try:
                await asyncio.wait_for(self._dispatcher.stop_polling(), 5.0)
            except (RuntimeError, TimeoutError):
                log.debug("polling_not_running")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.shop is not None:
            await self.shop.bot.session.close()
            self.shop = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        self._dispatcher = None
