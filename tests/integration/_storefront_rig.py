"""A real storefront against real local servers: the Bot API, TronGrid and toncenter fakes.

Nothing of ours is mocked: the bot is aiogram over HTTP to the fake Bot API
server, the ledger is SQLite, the verifier polls the chain fakes over HTTP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes import FakeToncenter, FakeTronGrid, payments_settings
from tests.fakes.telegram import BOT_TOKEN, FakeTelegram, FakeUser, SentMessage
from x0tta6bl4.config import Settings, StorefrontSettings
from x0tta6bl4.payments import Currency, Order, PaymentService, ledger_db_path
from x0tta6bl4.storefront import Storefront

__all__ = ["ADMIN", "ShopRig"]

ADMIN = 900_001


@dataclass
class ShopRig:
    """Servers, settings and the bot; start and stop the bot as often as a test needs."""

    tmp: Path
    storefront_overrides: dict[str, Any] = field(default_factory=dict)
    payments_overrides: dict[str, Any] = field(default_factory=dict)
    tg: FakeTelegram = field(init=False)
    tron: FakeTronGrid = field(init=False)
    ton: FakeToncenter = field(init=False)
    settings: Settings = field(init=False)
    payments: PaymentService = field(init=False)
    bot: Storefront | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _verifying: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ShopRig:
        self.tg = await FakeTelegram().start()
        self.tron = FakeTronGrid().start()
        self.ton = FakeToncenter().start()
        storefront = {
            "enabled": True,
            "bot_token": BOT_TOKEN,
            "api_base_url": self.tg.base_url,
            "admin_ids": [ADMIN],
            "support_contact": "@x0_support",
            "polling_timeout_s": 1,
            "check_cooldown_s": 2.0,
            "reconcile_interval_s": 0.5,
            "countdown_interval_s": 60,
            "api_backoff_max_s": 3,
            **self.storefront_overrides,
        }
        self.settings = Settings(
            data_dir=self.tmp,
            storefront=StorefrontSettings(**storefront),
            payments=payments_settings(self.tron, self.ton, **self.payments_overrides),
        )
        self.payments = PaymentService(self.settings.payments, ledger_db_path(self.settings))
        self._verifying = asyncio.create_task(self.payments.run(self._stop))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_bot()
        self._stop.set()
        if self._verifying is not None:
            await asyncio.wait_for(asyncio.gather(self._verifying, return_exceptions=True), 10)
        await self.payments.close()
        self.tron.stop()
        self.ton.stop()
        await self.tg.stop()

    async def start_bot(self) -> Storefront:
        self.bot = Storefront(self.settings, self.payments)
        await self.bot.start()
        return self.bot

    async def stop_bot(self) -> None:
        if self.bot is not None:
            await self.bot.stop()
            self.bot = None

    # A buyer's steps ------------------------------------------------------

    async def open_catalog(self, user: FakeUser) -> SentMessage:
        await self.tg.send_text(user, "/start")
        return await self.tg.wait_message(user.id, "x0tta6bl4")

    async def buy(
        self, user: FakeUser, plan: str = "FAMILY", currency: str = "usdt_trc20"
    ) -> tuple[SentMessage, Order]:
        """From /start to the invoice on screen; returns the invoice text message."""
        catalog = await self.open_catalog(user)
        await self.tg.press(user, catalog, f"plan:{plan}")
        choice = await self.tg.wait_for(
            lambda: next((m for m in self.tg.chat(user.id) if "pay:" in str(m.reply_markup)), None),
            what="currency choice",
        )
        await self.tg.press(user, choice, f"pay:{plan}:{currency}")
        invoice = await self.tg.wait_for(
            lambda: next((m for m in self.tg.chat(user.id) if "chk:" in str(m.reply_markup)), None),
            what="invoice",
        )
        order_id = next(
            b["callback_data"].split(":")[1]
            for b in invoice.buttons()
            if b.get("callback_data", "").startswith("chk:")
        )
        return invoice, await self.payments.get_order(order_id)

    def pay(self, order: Order, amount: int | None = None) -> str:
        """Send ``amount`` (default: exactly the invoice) to the shop on the order's chain."""
        value = order.amount if amount is None else amount
        if order.currency is Currency.USDT_TRC20:
            return self.tron.add_transfer(order.address, value)
        if order.currency is Currency.TON:
            return self.ton.add_ton_transfer(order.address, value, order.comment)
        return self.ton.add_jetton_transfer(order.address, value, order.comment)
