"""Ledger and PaymentVerifier actors on a real local Ray, against the loopback chains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from tests.fakes import SHOP_TRON, FakeTronGrid, payments_settings
from tests.helpers import async_wait_for
from x0tta6bl4.actors.ledger import LEDGER_NAME, remote_ledger
from x0tta6bl4.actors.payments_app import PaymentsComponent
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ConfigError, OrderStateError
from x0tta6bl4.payments import Currency, OrderState
from x0tta6bl4.sdk import Mesh

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PRICE = 3_000_000


@pytest.fixture
def chain() -> Iterator[FakeTronGrid]:
    with FakeTronGrid() as fake:
        yield fake


@pytest.fixture
def component(
    ray_session: RayInfo, chain: FakeTronGrid, tmp_path: Path
) -> Iterator[PaymentsComponent]:
    settings = Settings(
        data_dir=tmp_path,
        payments=payments_settings(chain, verifiers=2, poll_interval_s=0.1),
    )
    comp = PaymentsComponent(settings)
    comp.start(ray_session)
    yield comp
    comp.stop()
    comp.stop()  # idempotent
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
    assert not {LEDGER_NAME, "payment-verifier-0", "payment-verifier-1"} & names


async def test_actors_verify_once_through_verifier_and_ledger_kills(
    component: PaymentsComponent, chain: FakeTronGrid, ray_session: RayInfo
) -> None:
    service = Mesh(component.settings, ray_session).payments  # the SDK finds the Ledger actor
    assert isinstance(service.ledger, type(remote_ledger(component.ledger)))
    with pytest.raises(OrderStateError, match="no order"):
        await service.get_order("x0missing")
    orders = [
        await service.create_order(f"tg:{i}", "p", Currency.USDT_TRC20, PRICE) for i in range(30)
    ]
    for order in orders[:10]:
        chain.add_transfer(SHOP_TRON, order.amount)

    async def paid(count: int) -> bool:
        return (await service.stats())["orders"]["paid"] >= count

    await async_wait_for(lambda: paid(10), timeout_s=30, message="the first 10 paid")
    ray.kill(component.verifiers[0], no_restart=False)  # restarts, re-leases
    for order in orders[10:20]:
        chain.add_transfer(SHOP_TRON, order.amount)
    await async_wait_for(lambda: paid(20), timeout_s=30, message="20 paid after a verifier died")
    ray.kill(component.ledger, no_restart=False)  # reopens the same SQLite file
    for order in orders[20:]:
        chain.add_transfer(SHOP_TRON, order.amount)

    async def all_paid() -> bool:
        try:
            return await paid(30)
        except Exception:  # the ledger is restarting
            return False

    await async_wait_for(all_paid, timeout_s=60, message="all paid after the ledger died")
    stats = await service.stats()
    assert stats["payments"]["credited"] == 30
    assert stats["payments"]["extra"] == 0
    states = {(await service.get_order(o.id)).state for o in orders}
    assert states == {OrderState.PAID}
    assert component.status()["verifiers"] == 2


def test_enabled_without_an_address_says_what_to_set(ray_session: RayInfo) -> None:
    settings = Settings(payments={"enabled": True})
    with pytest.raises(ConfigError, match="no receiving address") as info:
        PaymentsComponent(settings).start(ray_session)
    assert "payments.tron_addresses" in info.value.fix
