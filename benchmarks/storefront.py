"""Telegram storefront under many concurrent buyers, through a loopback Bot API server.

The bot runs as its own process (``x0tta6bl4 bot``, with in-process payment
verification against a loopback TronGrid) and talks HTTP to a fake Bot API
server in this process.  Each simulated buyer goes /start -> plan -> currency
(a real order, QR code and invoice) -> "Check payment" (a real chain poll) ->
/orders -> /help, waiting for the bot's reply before the next step.

Two phases per size, on the same bot process:

* ``paced``: N buyers shop at the same time like people do, each thinking
  1-3 s (uniform) before every step and starting within the first 3 s.
  Its latencies are the headline ``reply.*``.
* ``burst``: N buyers act in lock-step with no think time, so N identical
  updates arrive at once at every step: the worst case, and the bot's
  saturated throughput, reported as ``updates_per_s``.

A reply's latency runs from the moment ``getUpdates`` hands the update to the
bot to the moment the bot's request with the answer the buyer waits for (the
catalog, the edited message, the invoice text, the callback answer) arrives
at the server.  ``since_sent.*`` measures from the moment the buyer sent the
update instead, so it also counts how long the update waited for the bot to
ask for it.  The baseline is a bare aiogram bot (in-memory FSM, one fixed
answer per update) driven by the same buyers through the same server.

Metrics: ``buyers``, ``updates``, ``updates_per_s`` (burst), ``reply.p50_ms``,
``reply.p95_ms``, ``reply.p99_ms``, ``reply.max_ms``, ``since_sent.*``,
``step.<step>.p99_ms`` (paced), ``burst.reply.*``, ``burst.step.<step>.p99_ms``,
``bot_cpu_ms_per_update`` (CPU the bot process
burns per update in the burst phase: comparable even on a busy machine, where
latency is not), ``load_1m`` (the machine's load when the run began), the same
under ``baseline.*``, and ``reply_p99_vs_baseline``.
Target: ``reply.p99_ms`` <= 200 at 100 concurrent buyers.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import console, parse_args, report
from tests.fakes import SHOP_TRON, FakeTronGrid
from tests.fakes.telegram import BOT_TOKEN, FakeTelegram, FakeUser, SentMessage

NAME = "storefront"
READY_TIMEOUT_S = 300.0
STEP_TIMEOUT_S = 60.0


@dataclass
class Run:
    """Latencies of one run, per step, in seconds."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    """From getUpdates offering the update to the reply arriving."""
    since_sent: list[float] = field(default_factory=list)
    """From the buyer sending the update to the reply arriving."""
    wall_s: float = 0.0
    bot_cpu_s: float = 0.0
    """CPU time (user + system) the bot process spent while the buyers shopped."""
    load_1m: float = 0.0

    def add(self, step: str, sent: float, offered: float, replied: float) -> None:
        self.latencies.setdefault(step, []).append(replied - offered)
        self.since_sent.append(replied - sent)

    def metrics(self, buyers: int) -> dict[str, Any]:
        every = np.array([x for xs in self.latencies.values() for x in xs]) * 1000
        return {
            "buyers": buyers,
            "updates": int(every.size),
            "updates_per_s": round(every.size / self.wall_s, 1),
            "bot_cpu_ms_per_update": round(self.bot_cpu_s * 1000 / every.size, 2),
            "load_1m": round(self.load_1m, 2),
            "reply": _percentiles(every),
            "since_sent": _percentiles(np.array(self.since_sent) * 1000),
            "step": {
                step: {"p99_ms": round(float(np.percentile(np.array(xs) * 1000, 99)), 1)}
                for step, xs in self.latencies.items()
            },
        }


def _percentiles(ms: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
    }


# The buyers ------------------------------------------------------------------


class Buyer:
    """One simulated person; ``storefront`` says which replies to wait for."""

    def __init__(
        self,
        tg: FakeTelegram,
        user: FakeUser,
        run: Run,
        storefront: bool,
        think: Callable[[], float] | None,
    ) -> None:
        self.tg = tg
        self.user = user
        self.run = run
        self.storefront = storefront
        self.think = think

    async def _pause(self) -> None:
        if self.think is not None:
            await asyncio.sleep(self.think())

    def _new_message(self, after: int, contains: str = "") -> Callable[[], SentMessage | None]:
        """The first message since ``after`` with ``contains`` in its text or buttons."""

        def find() -> SentMessage | None:
            chat = self.tg.messages.get(self.user.id, [])
            return next((m for m in chat[after:] if contains in m.body + str(m.reply_markup)), None)

        return find

    async def _text(self, step: str, text: str, contains: str = "") -> SentMessage:
        await self._pause()
        after = len(self.tg.messages.get(self.user.id, []))
        sent = time.monotonic()
        update = await self.tg.send_text(self.user, text)
        reply = await self.tg.wait_for(
            self._new_message(after, contains), STEP_TIMEOUT_S, step, chat_id=self.user.id
        )
        self.run.add(step, sent, self.tg.offered_at[update], reply.sent_at)
        return reply

    async def _press(self, step: str, message: SentMessage, data: str) -> None:
        await self._pause()
        sent = time.monotonic()
        query = await self.tg.press(self.user, message, data)
        answer = await self.tg.wait_for(
            lambda: self.tg.callback_answers.get(query), STEP_TIMEOUT_S, step, chat_id=self.user.id
        )
        self.run.add(step, sent, self.tg.offered_at[self.tg.query_updates[query]], answer["at"])

    async def _press_for_edit(self, step: str, message: SentMessage, data: str) -> None:
        await self._pause()
        edits, sent = message.edits, time.monotonic()
        query = await self.tg.press(self.user, message, data)
        await self.tg.wait_for(
            lambda: message.edits > edits, STEP_TIMEOUT_S, step, chat_id=self.user.id
        )
        assert message.edited_at is not None
        offered = self.tg.offered_at[self.tg.query_updates[query]]
        self.run.add(step, sent, offered, message.edited_at)

    async def shop(self) -> None:
        if not self.storefront:
            catalog = await self._text("start", "/start")
            for step in ("plan", "currency", "check"):
                await self._press(step, catalog, f"{step}:x")
            await self._text("orders", "/orders")
            await self._text("help", "/help")
            return
        catalog = await self._text("start", "/start", "x0tta6bl4")
        await self._press_for_edit("plan", catalog, "plan:SOLO")
        await self._press_for_edit("currency", catalog, "pay:SOLO:usdt_trc20")
        order = next(
            b["callback_data"]
            for b in catalog.buttons()
            if b.get("callback_data", "")[:4] == "chk:"
        )
        await self._press("check", catalog, order)
        await self._text("orders", "/orders", "x0")
        await self._text("help", "/help", "/orders")


# The bots under test -----------------------------------------------------------


def _storefront_process(
    tg: FakeTelegram, tron: FakeTronGrid, data_dir: str
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "X0_DATA_DIR": data_dir,
        "X0_LOG__LEVEL": "warning",
        "X0_STOREFRONT__BOT_TOKEN": BOT_TOKEN,
        "X0_STOREFRONT__API_BASE_URL": tg.base_url,
        "X0_STOREFRONT__POLLING_TIMEOUT_S": "10",
        "X0_PAYMENTS__TRON_ADDRESSES": f'["{SHOP_TRON}"]',
        "X0_PAYMENTS__TRONGRID_URL": tron.url,
        "X0_PAYMENTS__TRON_CONFIRMATIONS": "0",
        "X0_PAYMENTS__POLL_INTERVAL_S": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "x0tta6bl4", "--log-format", "json", "bot"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _baseline_process(tg: FakeTelegram) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--serve-baseline", tg.base_url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def serve_baseline(base_url: str) -> None:
    """A bare aiogram bot: one fixed answer per update, in-memory FSM, no retries."""
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import CallbackQuery, Message

    bot = Bot(BOT_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)))
    dp = Dispatcher()

    @dp.message()
    async def reply(message: Message) -> None:
        await bot.send_message(message.chat.id, "ok")

    @dp.callback_query()
    async def answer(query: CallbackQuery) -> None:
        await bot.answer_callback_query(query.id, text="ok")

    await dp.start_polling(bot, polling_timeout=10)


async def _measure(sizes: list[int], storefront: bool, seed: int = 7) -> dict[str, Run]:
    """Run the paced and the burst phase for each size on one bot process."""
    tg = await FakeTelegram().start()
    tron = FakeTronGrid().start()
    runs: dict[str, Run] = {}
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="x0-bench-storefront-") as data_dir:
        proc = _storefront_process(tg, tron, data_dir) if storefront else _baseline_process(tg)
        try:
            await tg.wait_for(
                lambda: tg.count("getUpdates") > 0 or proc.poll() is not None,
                READY_TIMEOUT_S,
                "the bot to start polling",
            )
            if proc.poll() is not None:
                raise RuntimeError(f"the bot exited at start:\n{proc.stderr.read()[-2000:]}")
            bot = psutil.Process(proc.pid)
            next_user = 10_000
            for size in sizes:
                for phase in ("paced", "burst"):
                    run = runs[f"{phase}_{size}"] = Run()
                    think = (lambda: rng.uniform(1.0, 3.0)) if phase == "paced" else None
                    people = []
                    for _ in range(size):
                        lang = "ru" if next_user % 3 else "en"
                        user = FakeUser(next_user, language_code=lang)
                        people.append(Buyer(tg, user, run, storefront, think))
                        next_user += 1
                    cpu_before = sum(bot.cpu_times()[:2])
                    run.load_1m = os.getloadavg()[0]
                    started = time.monotonic()
                    await asyncio.gather(*(p.shop() for p in people))
                    run.wall_s = time.monotonic() - started
                    run.bot_cpu_s = sum(bot.cpu_times()[:2]) - cpu_before
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(proc.communicate, timeout=60)
            tron.stop()
            await tg.stop()
        if proc.returncode not in (0, -signal.SIGTERM):
            raise RuntimeError(f"the bot exited with {proc.returncode}:\n{err[-2000:]}")
    return runs


def _summary(runs: dict[str, Run], size: int) -> dict[str, Any]:
    paced = runs[f"paced_{size}"].metrics(size)
    burst = runs[f"burst_{size}"].metrics(size)
    return {
        "buyers": size,
        "updates": paced["updates"],
        "updates_per_s": burst["updates_per_s"],
        "bot_cpu_ms_per_update": burst["bot_cpu_ms_per_update"],
        "load_1m": paced["load_1m"],
        "reply": paced["reply"],
        "since_sent": paced["since_sent"],
        "step": paced["step"],
        "burst": {k: burst[k] for k in ("reply", "since_sent", "step")},
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-baseline":
        asyncio.run(serve_baseline(sys.argv[2]))
        return
    args = parse_args(NAME, __doc__.splitlines()[0])
    sizes = [100] if args.quick else [100, 200]
    console.print(f"storefront, then the bare aiogram baseline: {sizes} buyers, paced and burst")
    ours = asyncio.run(_measure(sizes, storefront=True))
    base = asyncio.run(_measure(sizes, storefront=False))
    metrics: dict[str, Any] = {}
    for size in sizes:
        mine, theirs = _summary(ours, size), _summary(base, size)
        del theirs["buyers"], theirs["updates"], theirs["step"], theirs["burst"]["step"]
        mine["baseline"] = theirs
        mine["reply_p99_vs_baseline"] = round(
            mine["reply"]["p99_ms"] / max(theirs["reply"]["p99_ms"], 0.1), 2
        )
        if size == sizes[0]:
            metrics.update(mine)
        else:
            metrics[f"at_{size}"] = mine
    report(
        NAME,
        args,
        metrics,
        notes={
            "bot": "x0tta6bl4 bot as a separate process, SQLite FSM, in-process verification",
            "flow": "/start, plan, currency (order + QR + invoice), check (chain poll), "
            "/orders, /help",
            "paced": "think time uniform 1-3 s before every step; reply.* come from this phase",
            "latency": "reply.*: getUpdates offering the update -> the reply request arriving; "
            "since_sent.*: the buyer sending it -> the reply arriving",
            "burst": "no think time, all buyers in lock-step; updates_per_s comes from this phase",
            "target": "reply.p99_ms <= 200 at 100 concurrent buyers",
        },
    )


if __name__ == "__main__":
    main()
