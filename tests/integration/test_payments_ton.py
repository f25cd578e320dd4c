"""TON and USDT-on-TON verification end to end against a loopback toncenter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes import SHOP_TON, FakeToncenter, payments_settings, ton_address
from x0tta6bl4.errors import RateLimitedError
from x0tta6bl4.payments import (
    Currency,
    OrderState,
    PaymentService,
    TransferStatus,
    ton_friendly,
)

TON = 2 * 10**9
USDT = 5_000_000


@pytest.fixture
def chain() -> Iterator[FakeToncenter]:
    with FakeToncenter() as fake:
        yield fake


@pytest.fixture
async def service(chain: FakeToncenter, tmp_path: Path) -> AsyncIterator[PaymentService]:
    # Configure the wallet in its non-bounceable form; the chain answers in raw form.
    settings = payments_settings(ton=chain, ton_addresses=[ton_friendly(SHOP_TON)])
    svc = PaymentService(settings, tmp_path / "payments.sqlite")
    yield svc
    await svc.close()


async def test_ton_payment_with_the_order_comment_is_credited(
    chain: FakeToncenter, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.TON, TON)
    assert order.comment == order.id and order.amount == TON
    chain.add_ton_transfer(SHOP_TON, TON - 1, "not-an-order")
    tx = chain.add_ton_transfer(SHOP_TON, TON + 5, f"  {order.id.upper()} ")
    paid = await service.check(order.id)
    assert paid.state is OrderState.PAID
    assert paid.tx_id == tx
    [unmatched] = await service.ledger.payments(statuses=(TransferStatus.UNMATCHED,))
    assert unmatched.comment == "not-an-order"


async def test_underpaid_ton_order(chain: FakeToncenter, service: PaymentService) -> None:
    order = await service.create_order("tg:1", "p", Currency.TON, TON)
    chain.add_ton_transfer(SHOP_TON, TON - 1, order.id)
    after = await service.check(order.id)
    assert after.state is OrderState.UNDERPAID
    [event] = await service.ledger.events_since(0)
    assert event.kind == "underpaid"
    assert "1.999999999 TON of 2.00 TON" in event.detail


async def test_bounced_and_aborted_transfers_are_not_credited(
    chain: FakeToncenter, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.TON, TON)
    chain.add_ton_transfer(SHOP_TON, TON, order.id, bounced=True)
    chain.add_ton_transfer(SHOP_TON, TON, order.id, aborted=True)
    assert (await service.check(order.id)).state is OrderState.PENDING
    assert await service.ledger.payments() == []
    chain.add_ton_transfer(SHOP_TON, TON, order.id)
    assert (await service.check(order.id)).state is OrderState.PAID


async def test_usdt_jetton_from_our_jetton_wallet_is_credited(
    chain: FakeToncenter, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TON, USDT)
    buyer = ton_address("buyer")
    chain.add_jetton_transfer(SHOP_TON, USDT, order.id, sender=buyer)
    paid = await service.check(order.id)
    assert paid.state is OrderState.PAID
    [record] = await service.ledger.payments()
    assert (record.currency, record.amount, record.from_address) == (
        Currency.USDT_TON,
        USDT,
        buyer,
    )
    assert chain.count("/api/v2/runGetMethod") == 1


async def test_fake_jetton_is_rejected_and_flagged(
    chain: FakeToncenter, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TON, USDT)
    scam_master = ton_address("scam-master")
    chain.add_jetton_transfer(SHOP_TON, USDT, order.id, master=scam_master)
    chain.add_jetton_transfer(SHOP_TON, USDT, order.id, from_wallet=ton_address("forged"))
    assert (await service.check(order.id)).state is OrderState.PENDING
    flagged = await service.ledger.payments(statuses=(TransferStatus.SUSPICIOUS,))
    assert len(flagged) == 2
    assert all("fake jetton" in p.detail for p in flagged)
    kinds = {e.kind for e in await service.ledger.events_since(0)}
    assert kinds == {"suspicious"}


async def test_ton_paid_for_a_usdt_order_is_not_credited(
    chain: FakeToncenter, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TON, USDT)
    chain.add_ton_transfer(SHOP_TON, 10 * TON, order.id)
    assert (await service.check(order.id)).state is OrderState.PENDING
    [record] = await service.ledger.payments()
    assert record.status is TransferStatus.UNMATCHED
    assert "wants usdt_ton" in record.detail


async def test_cursor_advances_and_pages_are_followed(
    chain: FakeToncenter, service: PaymentService
) -> None:
    orders = [await service.create_order(f"tg:{i}", "p", Currency.TON, TON) for i in range(300)]
    for order in orders:
        chain.add_ton_transfer(SHOP_TON, TON, order.id)
    await service.poll_all()
    assert (await service.stats())["orders"]["paid"] == 300
    stream = f"ton:{service.chains.ton_addresses[0]}"
    cursor = await service.ledger.cursor(stream)
    assert cursor is not None and int(cursor) == chain.lt
    assert await service.poll_all() == []  # nothing open: the stream is not polled
    before = chain.count("/api/v3/transactions")
    extra = await service.create_order("tg:x", "p", Currency.TON, TON)
    assert (await service.check(extra.id)).state is OrderState.PENDING
    assert chain.count("/api/v3/transactions") == before + 1
    assert chain.requests[-1].query["start_lt"] == str(chain.lt + 1)


async def test_toncenter_rate_limit(chain: FakeToncenter, service: PaymentService) -> None:
    order = await service.create_order("tg:1", "p", Currency.TON, TON)
    chain.add_ton_transfer(SHOP_TON, TON, order.id)
    chain.rate_limit(1, retry_after_s=3)
    with pytest.raises(RateLimitedError) as info:
        await service.check(order.id)
    assert info.value.retry_after_s == 3
    assert (await service.check(order.id)).state is OrderState.PAID
