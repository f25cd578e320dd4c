"""A verifier or ledger that dies at any point loses nothing and credits nothing twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import SHOP_TRON, FakeTronGrid, payments_settings
from tests.helpers import async_wait_for
from x0tta6bl4.payments import Currency, Ledger, OrderState, PaymentService, Verifier
from x0tta6bl4.payments._repository import Outcome
from x0tta6bl4.payments._source import ChainSource

PRICE = 1_000_000

_RUN_VERIFIER = """
import asyncio, sys
from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.payments import PaymentService
settings = PaymentsSettings.model_validate_json(sys.argv[1])
asyncio.run(PaymentService(settings, sys.argv[2]).run())
"""


class Crash(Exception):
    """Stands for the process dying at this point."""


class CrashingLedger:
    """The real ledger, except that ``record`` dies before or after it commits."""

    def __init__(self, ledger: Ledger, after_commit: bool) -> None:
        self.ledger = ledger
        self.after_commit = after_commit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ledger, name)

    async def record(self, *args: Any) -> list[Outcome]:
        if not self.after_commit:
            raise Crash("died after seeing, before crediting")
        await self.ledger.record(*args)
        raise Crash("died after crediting, before hearing back")


@pytest.fixture
def chain() -> Iterator[FakeTronGrid]:
    with FakeTronGrid(finality_depth=1) as fake:
        yield fake


@pytest.mark.parametrize("after_commit", [False, True])
async def test_crash_between_seeing_and_crediting(
    chain: FakeTronGrid, tmp_path: Path, after_commit: bool
) -> None:
    db = tmp_path / "p.sqlite"
    settings = payments_settings(chain)
    first = PaymentService(settings, db)
    orders = [
        await first.create_order(f"tg:{i}", "p", Currency.USDT_TRC20, PRICE) for i in range(5)
    ]
    for order in orders:
        chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(1)
    dying = CrashingLedger(first.ledger, after_commit)  # type: ignore[arg-type]
    sources: dict[Any, ChainSource] = dict(first.verifier().sources)
    with pytest.raises(Crash):
        await Verifier(dying, sources, first.chains, settings, "doomed", False).poll(
            f"tron:{SHOP_TRON}"
        )
    await first.close()

    async with PaymentService(settings, db) as restarted:
        states = {(await restarted.check(o.id)).state for o in orders}
        stats = await restarted.stats()
    assert states == {OrderState.PAID}
    assert stats["payments"]["credited"] == len(orders)
    assert stats["payments"]["extra"] == 0


@pytest.mark.slow
async def test_verifier_process_killed_mid_run_loses_and_doubles_nothing(
    chain: FakeTronGrid, tmp_path: Path
) -> None:
    db = tmp_path / "p.sqlite"
    settings = payments_settings(chain, poll_interval_s=0.05)
    service = PaymentService(settings, db)
    orders = [
        await service.create_order(f"tg:{i}", "p", Currency.USDT_TRC20, PRICE) for i in range(60)
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _RUN_VERIFIER, settings.model_dump_json(), str(db)], env=env
    )
    chain.delay_s = 0.01  # slow answers: the kill lands inside a poll
    try:
        for order in orders[:40]:
            chain.add_transfer(SHOP_TRON, order.amount)
            chain.mine(1)
            await asyncio.sleep(0.01)

        async def some_paid() -> bool:
            return (await service.stats())["orders"]["paid"] >= 10

        await async_wait_for(some_paid, timeout_s=30, message="the verifier to credit some")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    chain.delay_s = 0.0
    for order in orders[40:]:
        chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(1)
    await service.close()

    async with PaymentService(settings, db) as restarted:
        await restarted.poll_all()
        stats = await restarted.stats()
    assert stats["orders"]["paid"] == len(orders)
    assert stats["payments"]["credited"] == len(orders)
    assert stats["payments"]["extra"] == 0
