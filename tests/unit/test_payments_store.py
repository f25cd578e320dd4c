"""The SQLite repository: migrations, unique amounts, the exactly-once guards, leases."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from x0tta6bl4.errors import OrderStateError, PaymentError
from x0tta6bl4.payments import Chain, Currency, OrderState, Transfer, TransferStatus
from x0tta6bl4.payments._repository import NewOrder
from x0tta6bl4.payments._sqlite import MIGRATIONS, SqliteRepository

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
DAY = timedelta(days=1)


def _new(
    order_id: str, price: int = 1_000_000, offset_max: int = 3, offset_step: int = 1
) -> NewOrder:
    return NewOrder(
        id=order_id,
        customer="tg:1",
        product="p",
        currency=Currency.USDT_TRC20,
        price=price,
        addresses=(ADDRESS,),
        expires_at=T0 + timedelta(minutes=15),
        late_window=DAY,
        offset_max=offset_max,
        offset_step=offset_step,
    )


def _pay(tx_id: str, amount: int, at: datetime = T0) -> Transfer:
    return Transfer(Chain.TRON, tx_id, ADDRESS, "Tpayer", Currency.USDT_TRC20, amount, at)


@pytest.fixture
def repo(tmp_path: Path) -> SqliteRepository:
    return SqliteRepository(tmp_path / "p.sqlite")


def test_schema_is_migrated_once_in_wal_mode(tmp_path: Path) -> None:
    first = SqliteRepository(tmp_path / "p.sqlite")
    assert first.schema_version == len(MIGRATIONS)
    first.close()
    again = SqliteRepository(tmp_path / "p.sqlite")
    assert again.schema_version == len(MIGRATIONS)
    mode = again._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    again._db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    again.close()
    with pytest.raises(PaymentError, match="newer than this code"):
        SqliteRepository(tmp_path / "p.sqlite")


def test_unique_amounts_are_allocated_until_exhausted_and_freed_by_cancel(
    repo: SqliteRepository,
) -> None:
    amounts = [repo.create_order(_new(f"o{i}"), T0).amount for i in range(3)]
    assert amounts == [1_000_001, 1_000_002, 1_000_003]
    with pytest.raises(PaymentError, match="unique amount") as info:
        repo.create_order(_new("o3"), T0)
    assert "unique_offset_max" in info.value.fix
    repo.cancel("o1", T0)
    assert repo.create_order(_new("o4"), T0).amount == 1_000_002


def test_unique_amounts_keep_their_distance_across_prices(repo: SqliteRepository) -> None:
    first = repo.create_order(_new("o0", offset_max=50, offset_step=10), T0)
    # A price 5 units higher must not land within 10 units of the first amount.
    second = repo.create_order(_new("o1", 1_000_005, offset_max=50, offset_step=10), T0)
    assert first.amount == 1_000_010
    assert abs(second.amount - first.amount) >= 10
    assert second.amount == 1_000_025


def test_expired_orders_keep_their_amount_through_the_late_window(
    repo: SqliteRepository,
) -> None:
    repo.create_order(_new("o0", offset_max=1), T0)
    assert [o.id for o in repo.expire_due(T0 + timedelta(minutes=16))] == ["o0"]
    with pytest.raises(PaymentError):
        repo.create_order(_new("o1", offset_max=1), T0 + timedelta(minutes=20))
    after_window = T0 + timedelta(minutes=15) + DAY + timedelta(seconds=1)
    assert repo.create_order(_new("o2", offset_max=1), after_window).amount == 1_000_001


def test_database_refuses_two_pending_orders_with_one_amount(repo: SqliteRepository) -> None:
    repo.create_order(_new("o0"), T0)
    with pytest.raises(sqlite3.IntegrityError):
        repo._db.execute(
            "INSERT INTO orders SELECT 'dup', customer, product, currency, chain, address, "
            "price, amount, comment, state, created_ms, expires_ms, reserved_until_ms, tx_id, "
            "paid_ms, updated_ms FROM orders WHERE id = 'o0'"
        )


def test_a_transfer_is_recorded_once_and_a_second_payment_is_extra(
    repo: SqliteRepository,
) -> None:
    order = repo.create_order(_new("o0"), T0)
    [first] = repo.record("s", [_pay("tx1", order.amount)], "10", T0, DAY)
    [again] = repo.record("s", [_pay("tx1", order.amount)], "11", T0, DAY)
    [second] = repo.record("s", [_pay("tx2", order.amount)], "12", T0, DAY)
    assert (first.status, first.new) == (TransferStatus.CREDITED, True)
    assert (again.status, again.new) == (TransferStatus.CREDITED, False)
    assert (second.status, second.order_id) == (TransferStatus.EXTRA, "o0")
    paid = repo.get_order("o0")
    assert paid is not None and (paid.state, paid.tx_id) == (OrderState.PAID, "tx1")
    assert repo.cursor("s") == "12"
    assert [e.kind for e in repo.events_since(0)] == ["paid", "suspicious"]


def test_transfers_of_one_transaction_are_keyed_by_event_index(
    repo: SqliteRepository,
) -> None:
    one, two = repo.create_order(_new("o0"), T0), repo.create_order(_new("o1"), T0)
    batch = [
        Transfer(Chain.TRON, "tx1", ADDRESS, "Tp", Currency.USDT_TRC20, order.amount, T0,
                 event_index=index)
        for index, order in enumerate((one, two))
    ]  # fmt: skip
    assert repo.known(Chain.TRON, [("tx1", 0), ("tx1", 1)]) == set()
    outcomes = repo.record("s", batch, "10", T0, DAY)
    assert [(o.order_id, o.event_index, o.new) for o in outcomes] == [
        ("o0", 0, True),
        ("o1", 1, True),
    ]
    assert [o.new for o in repo.record("s", batch, "11", T0, DAY)] == [False, False]
    assert repo.known(Chain.TRON, [("tx1", 0), ("tx1", 1), ("tx1", 2)]) == {
        ("tx1", 0),
        ("tx1", 1),
    }
    assert repo.stats()["payments"]["credited"] == 2


def test_version_1_payments_keep_their_rows_as_event_0(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO payments VALUES ('tron', 'tx1', 'usdt_trc20', 5, 'Tp', ?, NULL, 1, 2, "
        "NULL, 'unmatched', 'old')",
        (ADDRESS,),
    )
    db.close()
    repo = SqliteRepository(path)
    assert repo.schema_version == len(MIGRATIONS)
    [old] = repo.payments()
    assert (old.tx_id, old.event_index, old.detail) == ("tx1", 0, "old")
    assert repo.known(Chain.TRON, [("tx1", 0), ("tx1", 1)]) == {("tx1", 0)}


def test_two_writers_on_one_file_credit_once(tmp_path: Path) -> None:
    one = SqliteRepository(tmp_path / "p.sqlite")
    two = SqliteRepository(tmp_path / "p.sqlite")
    order = one.create_order(_new("o0"), T0)
    results = [r.record(None, [_pay("tx1", order.amount)], None, T0, DAY) for r in (two, one)]
    assert [res[0].new for res in results] == [True, False]
    assert one.stats()["payments"]["credited"] == 1


def test_cancel_needs_a_pending_order(repo: SqliteRepository) -> None:
    order = repo.create_order(_new("o0"), T0)
    repo.record(None, [_pay("tx1", order.amount)], None, T0, DAY)
    with pytest.raises(OrderStateError, match="only pending"):
        repo.cancel("o0", T0)
    with pytest.raises(OrderStateError, match="no order"):
        repo.cancel("nope", T0)


def test_leases_split_streams_fairly_and_expire(repo: SqliteRepository) -> None:
    streams = ["s1", "s2", "s3", "s4"]
    ttl = timedelta(seconds=10)
    assert repo.lease("a", streams, ttl, T0) == streams
    assert repo.lease("b", streams, ttl, T0) == []  # all held by a
    assert repo.lease("a", streams, ttl, T0) == ["s1", "s2"]  # a gives up its surplus
    assert repo.lease("b", streams, ttl, T0) == ["s3", "s4"]
    later = T0 + timedelta(seconds=11)  # a died: its leases lapse
    assert repo.lease("b", streams, ttl, later) == streams
