"""USDT-TRC20 verification end to end against a loopback TronGrid speaking its wire format."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakes import SHOP_TRON, FakeTronGrid, payments_settings, tron_address
from x0tta6bl4.errors import MalformedResponseError, RateLimitedError
from x0tta6bl4.payments import (
    Chain,
    Currency,
    Order,
    OrderState,
    PaymentService,
    TransferStatus,
    Verifier,
    build_sources,
)

PRICE = 12_500_000  # 12.5 USDT


async def _orders(service: PaymentService, count: int) -> list[Order]:
    """``count`` USDT-TRC20 orders at one price (each gets its own unique amount)."""
    return [
        await service.create_order(f"tg:{i}", "p", Currency.USDT_TRC20, PRICE) for i in range(count)
    ]


@pytest.fixture
def chain() -> Iterator[FakeTronGrid]:
    with FakeTronGrid(finality_depth=2) as fake:
        yield fake


@pytest.fixture
async def service(chain: FakeTronGrid, tmp_path: Path) -> AsyncIterator[PaymentService]:
    svc = PaymentService(payments_settings(chain), tmp_path / "payments.sqlite")
    yield svc
    await svc.close()


async def test_exact_payment_is_credited_once_with_an_event(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "node-month", Currency.USDT_TRC20, PRICE)
    assert order.amount == PRICE + 10  # the first unique offset (unique_offset_step)
    events = service.events()
    next_event = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    tx = chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(2)
    paid = await service.check(order.id)
    assert paid.state is OrderState.PAID
    assert paid.tx_id == tx
    assert paid.paid_at is not None
    event = await asyncio.wait_for(next_event, 5)
    assert (event.kind, event.order.id) == ("paid", order.id)
    again = await service.check(order.id)
    assert again.state is OrderState.PAID
    stats = await service.stats()
    assert stats["payments"]["credited"] == 1
    assert stats["revenue"]["usdt_trc20"] == order.amount
    await events.aclose()


async def test_pending_then_confirmed(chain: FakeTronGrid, service: PaymentService) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
    chain.add_transfer(SHOP_TRON, order.amount, pending=True)
    assert (await service.check(order.id)).state is OrderState.PENDING  # in the mempool
    chain.mine(1)
    assert (await service.check(order.id)).state is OrderState.PENDING  # 0 blocks on top
    chain.mine(1)
    assert (await service.check(order.id)).state is OrderState.PENDING  # 1 of 2
    chain.mine(1)
    assert (await service.check(order.id)).state is OrderState.PAID


async def test_fake_usdt_contract_is_rejected_and_flagged(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
    fake = tron_address("scam-token")
    chain.add_transfer(SHOP_TRON, order.amount, contract=fake, symbol="USDT", name="Tether USD")
    chain.mine(2)
    after = await service.check(order.id)
    assert after.state is OrderState.PENDING
    [record] = await service.ledger.payments(statuses=(TransferStatus.SUSPICIOUS,))
    assert fake in record.detail
    [event] = await service.ledger.events_since(0)
    assert (event.kind, event.order.id) == ("suspicious", order.id)


async def test_wrong_recipient_and_amount_off_by_one_are_not_credited(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
    chain.add_transfer(tron_address("someone-else"), order.amount)
    chain.add_transfer(SHOP_TRON, order.amount - 1)
    chain.add_transfer(SHOP_TRON, order.amount + 1)
    chain.mine(2)
    assert (await service.check(order.id)).state is OrderState.PENDING
    unmatched = await service.ledger.payments(statuses=(TransferStatus.UNMATCHED,))
    assert sorted(p.amount for p in unmatched) == [order.amount - 1, order.amount + 1]


async def test_two_orders_with_the_same_price_get_their_own_payment(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    first = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
    second = await service.create_order("tg:2", "p", Currency.USDT_TRC20, PRICE)
    assert first.amount != second.amount
    tx2 = chain.add_transfer(SHOP_TRON, second.amount)
    chain.mine(2)
    assert (await service.check(first.id)).state is OrderState.PENDING
    assert (await service.check(second.id)).tx_id == tx2
    tx1 = chain.add_transfer(SHOP_TRON, first.amount)
    chain.mine(2)
    assert (await service.check(first.id)).tx_id == tx1


async def test_same_transfer_seen_twice_and_by_two_verifiers_credits_once(
    chain: FakeTronGrid, service: PaymentService, tmp_path: Path
) -> None:
    orders = await _orders(service, 20)
    for order in orders:
        chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(2)
    # A second process with its own ledger on the same file, racing this one.
    rival = PaymentService(service.settings, tmp_path / "payments.sqlite")
    settings, chains = service.settings, service.chains
    verifiers = [
        Verifier(svc.ledger, build_sources(settings, chains), chains, settings, f"v{i}", False)
        for i, svc in enumerate([service, rival, service])
    ]
    try:
        results = await asyncio.gather(*(v.cycle() for v in verifiers))
        results += await asyncio.gather(*(v.cycle() for v in verifiers))
    finally:
        for v in verifiers:
            for source in v.sources.values():
                await source.aclose()
        await rival.close()
    credited = sum(r.credited for rs in results for r in rs)
    assert credited == len(orders)
    stats = await service.stats()
    assert stats["orders"]["paid"] == len(orders)
    assert stats["payments"]["credited"] == len(orders)
    assert stats["payments"]["extra"] == 0


async def test_expired_then_late_payment_is_kept_as_late(
    chain: FakeTronGrid, tmp_path: Path
) -> None:
    settings = payments_settings(chain, expiry_min=0.001)  # 60 ms
    async with PaymentService(settings, tmp_path / "p.sqlite") as service:
        order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
        await asyncio.sleep(0.1)
        [expired] = await service.expire_due()
        assert expired.id == order.id
        assert expired.state is OrderState.EXPIRED
        # A new order at the same price must not reuse the late order's amount.
        other = await service.create_order("tg:2", "p", Currency.USDT_TRC20, PRICE)
        assert other.amount != order.amount
        chain.add_transfer(SHOP_TRON, order.amount)
        chain.mine(2)
        late = await service.check(order.id)
        assert late.state is OrderState.LATE
        kinds = [e.kind for e in await service.ledger.events_since(0)]
        assert kinds == ["expired", "late"]
        assert (await service.get_order(other.id)).state is OrderState.PENDING


async def test_history_pages_are_followed_by_fingerprint(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    orders = await _orders(service, 450)
    for order in orders:
        chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(2)
    await service.poll_all()
    assert (await service.stats())["orders"]["paid"] == 450
    assert chain.count("/v1/accounts/") >= 3  # 200 + 200 + 50


async def test_rate_limit_raises_with_retry_after_then_recovers(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
    chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(2)
    chain.rate_limit(1, retry_after_s=7)
    with pytest.raises(RateLimitedError) as info:
        await service.check(order.id)
    assert info.value.retry_after_s == 7
    chain.frequency_limit(1, suspended_s=30)
    [result] = await service.poll_all()
    assert result.error is not None and "rate-limited" in result.error
    verifier = service.verifier()
    assert verifier._schedule[result.stream].due - verifier.clock() >= 29  # Retry-After
    assert (await service.get_order(order.id)).state is OrderState.PENDING
    assert (await service.check(order.id)).state is OrderState.PAID


async def test_malformed_answers_change_nothing(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    from tests.fakes import Fault

    order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
    chain.add_transfer(SHOP_TRON, order.amount)
    chain.mine(2)
    chain.inject(Fault(200, b'{"data": [{"transaction_id": ', 1, "/v1/accounts/"))
    with pytest.raises(MalformedResponseError, match="invalid JSON"):
        await service.check(order.id)
    chain.inject(Fault(200, b'{"data": [{"transaction_id": "ab"}], "success": true}', 1))
    with pytest.raises(MalformedResponseError):
        await service.check(order.id)
    stream = f"tron:{SHOP_TRON}"
    assert await service.ledger.cursor(stream) is None
    assert (await service.get_order(order.id)).state is OrderState.PENDING
    assert (await service.check(order.id)).state is OrderState.PAID


async def test_api_key_header_is_sent(chain: FakeTronGrid, tmp_path: Path) -> None:
    settings = payments_settings(chain, trongrid_api_key="k-123")
    async with PaymentService(settings, tmp_path / "p.sqlite") as service:
        order = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
        await service.check(order.id)
    assert chain.requests[-1].headers.get("tron-pro-api-key") == "k-123"


async def test_background_run_credits_and_expires_by_itself(
    chain: FakeTronGrid, tmp_path: Path
) -> None:
    from tests.helpers import async_wait_for

    settings = payments_settings(chain, expiry_min=0.01)  # 0.6 s
    async with PaymentService(settings, tmp_path / "p.sqlite") as service:
        stop = asyncio.Event()
        runner = asyncio.create_task(service.run(stop))
        paid = await service.create_order("tg:1", "p", Currency.USDT_TRC20, PRICE)
        unpaid = await service.create_order("tg:2", "p", Currency.USDT_TRC20, PRICE)
        chain.add_transfer(SHOP_TRON, paid.amount)
        chain.mine(2)

        async def settled() -> bool:
            states = {(await service.get_order(o.id)).state for o in (paid, unpaid)}
            return states == {OrderState.PAID, OrderState.EXPIRED}

        await async_wait_for(settled, timeout_s=10, message="paid and expired")
        stop.set()
        await asyncio.wait_for(runner, 5)


async def test_finality_is_found_with_few_receipts_and_failed_calls_never_count(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    orders = await _orders(service, 40)
    for order in orders[:-1]:
        chain.add_transfer(SHOP_TRON, order.amount)
        chain.add_transfer(SHOP_TRON, order.amount + 3)  # matches nothing
        chain.mine(1)  # 39 blocks: the first 37 have 2+ blocks on top
    failed = chain.add_transfer(SHOP_TRON, orders[-1].amount, result="REVERT")
    chain.mine(2)
    await service.poll_all()
    assert chain.count("/wallet/gettransactioninfobyid") <= 8  # a binary search, not 79
    states = [(await service.get_order(o.id)).state for o in orders]
    assert states == [OrderState.PAID] * 39 + [OrderState.PENDING]
    assert failed not in {p.tx_id for p in await service.ledger.payments()}


async def test_reconcile_rescans_addresses_without_open_orders(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    stray = chain.add_transfer(SHOP_TRON, 5_000_000)
    chain.mine(2)
    assert await service.poll_all() == []  # no open order: the address is not polled
    [record] = await service.reconcile()
    assert (record.tx_id, record.status) == (stray, TransferStatus.UNMATCHED)
    listing = [r for r in chain.requests if r.path.startswith("/v1/accounts/")][-1]
    day_ago_ms = (time.time() - 86_400) * 1000
    assert abs(int(listing.query["min_timestamp"]) - day_ago_ms) < 60_000
    assert await service.reconcile() == [record]  # a second scan records nothing new


async def test_one_transaction_paying_two_orders_credits_each_transfer_once(
    chain: FakeTronGrid, service: PaymentService
) -> None:
    first, second, third = await _orders(service, 3)
    # A batch payout: one transaction, three Transfer events to us (two orders, and
    # a repeat of the first amount), listed by TronGrid as three rows with one id.
    tx = chain.add_transfer(SHOP_TRON, first.amount)
    chain.add_transfer(SHOP_TRON, second.amount, tx_id=tx)
    chain.add_transfer(SHOP_TRON, first.amount, tx_id=tx)
    chain.mine(2)
    listing = await service.verifier().sources[Chain.TRON].client.trc20_transfers(SHOP_TRON)
    assert [row.tx_id for row in listing] == [tx] * 3
    for _ in range(3):  # polled again and again: nothing is counted twice
        assert (await service.check(first.id)).state is OrderState.PAID
        await service.poll_all()
    assert (await service.get_order(second.id)).tx_id == tx
    assert (await service.get_order(third.id)).state is OrderState.PENDING
    records = await service.ledger.payments()
    assert sorted((r.tx_id, r.event_index, r.status) for r in records) == [
        (tx, 0, TransferStatus.CREDITED),
        (tx, 1, TransferStatus.EXTRA),  # the first order's amount again: flagged for refund
        (tx, 2, TransferStatus.CREDITED),
    ]
    stats = await service.stats()
    assert stats["payments"]["credited"] == 2
    assert stats["revenue"]["usdt_trc20"] == first.amount + second.amount
