"""SQLite (WAL) implementation of the ledger's repository, with schema migrations.

Every method is blocking and runs on the ledger's one worker thread.  Writes
happen in ``BEGIN IMMEDIATE`` transactions, so a second process writing the
same file waits instead of interleaving; the primary key on
``payments(chain, tx_id, event_index)`` and the conditional ``UPDATE ... WHERE
state IN ('pending', 'expired')`` make a double credit impossible even then.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from x0tta6bl4.errors import OrderStateError, PaymentError
from x0tta6bl4.payments._matching import match, normalize_comment
from x0tta6bl4.payments._models import (
    Chain,
    Currency,
    Order,
    OrderEvent,
    OrderState,
    Transfer,
    TransferStatus,
)
from x0tta6bl4.payments._repository import (
    NewOrder,
    Outcome,
    PaymentRecord,
    StreamWork,
    stream_of,
)

__all__ = ["MIGRATIONS", "SqliteRepository"]

MIGRATIONS: list[str] = [
    """
    CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        product TEXT NOT NULL,
        currency TEXT NOT NULL,
        chain TEXT NOT NULL,
        address TEXT NOT NULL,
        price INTEGER NOT NULL CHECK (price > 0),
        amount INTEGER NOT NULL CHECK (amount >= price),
        comment TEXT,
        state TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        reserved_until_ms INTEGER NOT NULL,
        tx_id TEXT,
        paid_ms INTEGER,
        updated_ms INTEGER NOT NULL
    );
    CREATE INDEX orders_customer ON orders (customer, created_ms);
    CREATE INDEX orders_amount ON orders (chain, address, amount);
    CREATE INDEX orders_comment ON orders (comment);
    CREATE INDEX orders_state ON orders (state, expires_ms);
    CREATE UNIQUE INDEX orders_open_amount ON orders (currency, address, amount)
        WHERE state = 'pending' AND currency = 'usdt_trc20';
    CREATE TABLE payments (
        chain TEXT NOT NULL,
        tx_id TEXT NOT NULL,
        currency TEXT,
        amount INTEGER NOT NULL,
        from_address TEXT NOT NULL,
        to_address TEXT NOT NULL,
        comment TEXT,
        block_ms INTEGER NOT NULL,
        seen_ms INTEGER NOT NULL,
        order_id TEXT REFERENCES orders (id),
        status TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (chain, tx_id)
    );
    CREATE INDEX payments_order ON payments (order_id);
    CREATE INDEX payments_block ON payments (block_ms);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id TEXT NOT NULL REFERENCES orders (id),
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    );
    CREATE TABLE cursors (
        stream TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_ms INTEGER NOT NULL
    );
    CREATE TABLE leases (
        stream TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        until_ms INTEGER NOT NULL
    );
    CREATE TABLE verifiers (
        owner TEXT PRIMARY KEY,
        until_ms INTEGER NOT NULL
    );
    """,
    # 2: one transaction may carry several transfers to us; each is its own row.
    """
    CREATE TABLE payments_v2 (
        chain TEXT NOT NULL,
        tx_id TEXT NOT NULL,
        event_index INTEGER NOT NULL DEFAULT 0,
        currency TEXT,
        amount INTEGER NOT NULL,
        from_address TEXT NOT NULL,
        to_address TEXT NOT NULL,
        comment TEXT,
        block_ms INTEGER NOT NULL,
        seen_ms INTEGER NOT NULL,
        order_id TEXT REFERENCES orders (id),
        status TEXT NOT NULL,
        detail TEXT NOT NULL,
        PRIMARY KEY (chain, tx_id, event_index)
    );
    INSERT INTO payments_v2 (chain, tx_id, event_index, currency, amount, from_address,
        to_address, comment, block_ms, seen_ms, order_id, status, detail)
        SELECT chain, tx_id, 0, currency, amount, from_address, to_address, comment,
            block_ms, seen_ms, order_id, status, detail FROM payments;
    DROP TABLE payments;
    ALTER TABLE payments_v2 RENAME TO payments;
    CREATE INDEX payments_order ON payments (order_id);
    CREATE INDEX payments_block ON payments (block_ms);
    """,
]
"""Schema versions in order; ``PRAGMA user_version`` counts the applied ones."""

_ORDER_COLUMNS = (
    "id, customer, product, currency, address, price, amount, comment, state, "
    "created_ms, expires_ms, tx_id, paid_ms"
)


_ORDER_COLUMNS_O = ", ".join("o." + c.strip() for c in _ORDER_COLUMNS.split(","))


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def _order(row: sqlite3.Row) -> Order:
    return Order(
        id=row["id"],
        customer=row["customer"],
        product=row["product"],
        currency=Currency(row["currency"]),
        amount=row["amount"],
        price=row["price"],
        address=row["address"],
        comment=row["comment"],
        state=OrderState(row["state"]),
        created_at=datetime.fromtimestamp(row["created_ms"] / 1000, UTC),
        expires_at=datetime.fromtimestamp(row["expires_ms"] / 1000, UTC),
        tx_id=row["tx_id"],
        paid_at=_dt(row["paid_ms"]),
    )


class SqliteRepository:
    """Orders, payments, events, cursors and stream leases in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise PaymentError(
                f"cannot open the payments database {self.path}: {exc}",
                fix="check the directory exists and is writable (payments.db_path)",
            ) from exc
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise PaymentError(
                    f"{self.path} has schema version {version}, newer than this code "
                    f"({len(MIGRATIONS)})",
                    fix="upgrade x0tta6bl4, or point payments.db_path at another file",
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        version: int = self._db.execute("PRAGMA user_version").fetchone()[0]
        return version

    # -- orders ---------------------------------------------------------------

    def create_order(self, new: NewOrder, now: datetime) -> Order:
        """Insert an order, choosing its address and (TRC20) its unique amount."""
        now_ms = _ms(now)
        expires_ms = _ms(new.expires_at)
        with self._write() as db:
            address, amount = self._place(db, new, now_ms)
            db.execute(
                "INSERT INTO orders (id, customer, product, currency, chain, address, price, "
                "amount, comment, state, created_ms, expires_ms, reserved_until_ms, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                (
                    new.id,
                    new.customer,
                    new.product,
                    new.currency.value,
                    new.currency.chain.value,
                    address,
                    new.price,
                    amount,
                    None if new.currency.unique_amounts else new.id,
                    now_ms,
                    expires_ms,
                    expires_ms + int(new.late_window.total_seconds() * 1000),
                    now_ms,
                ),
            )
            row = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (new.id,)
            ).fetchone()
        return _order(row)

    def _place(self, db: sqlite3.Connection, new: NewOrder, now_ms: int) -> tuple[str, int]:
        load = {
            a: db.execute(
                "SELECT COUNT(*) FROM orders WHERE chain = ? AND address = ? AND state = 'pending'",
                (new.currency.chain.value, a),
            ).fetchone()[0]
            for a in new.addresses
        }
        ranked = sorted(new.addresses, key=lambda a: load[a])
        if not new.currency.unique_amounts:
            return ranked[0], new.price
        step = new.offset_step
        for address in ranked:
            used = {
                row[0]
                for row in db.execute(
                    "SELECT amount FROM orders WHERE chain = ? AND address = ? AND currency = ? "
                    "AND amount BETWEEN ? AND ? AND (state = 'pending' OR reserved_until_ms > ?)",
                    (
                        new.currency.chain.value,
                        address,
                        new.currency.value,
                        new.price + 1 - step,
                        new.price + new.offset_max + step,
                        now_ms,
                    ),
                )
            }
            for offset in range(step, new.offset_max + 1, step):
                amount = new.price + offset
                if not any(amount + d in used for d in range(1 - step, step)):
                    return address, amount
        raise PaymentError(
            f"every unique amount near this price is taken by an open order "
            f"({new.offset_max // step} per address, {len(new.addresses)} address(es))",
            fix="raise payments.unique_offset_max or add payments.tron_addresses",
            currency=new.currency.value,
        )

    def get_order(self, order_id: str) -> Order | None:
        row = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,)
        ).fetchone()
        return None if row is None else _order(row)

    def orders(
        self,
        customer: str | None = None,
        states: tuple[OrderState, ...] = (),
        limit: int = 100,
    ) -> list[Order]:
        where, args = [], []
        if customer is not None:
            where.append("customer = ?")
            args.append(customer)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(s.value for s in states)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT {_ORDER_COLUMNS} FROM orders {clause} ORDER BY created_ms DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [_order(r) for r in rows]

    def cancel(self, order_id: str, now: datetime) -> Order:
        with self._write() as db:
            changed = db.execute(
                "UPDATE orders SET state = 'cancelled', updated_ms = ?, reserved_until_ms = ? "
                "WHERE id = ? AND state = 'pending'",
                (_ms(now), _ms(now), order_id),
            ).rowcount
        order = self.get_order(order_id)
        if order is None:
            raise _unknown(order_id)
        if not changed:
            raise OrderStateError(
                f"order {order_id} is {order.state.value}; only pending orders can be cancelled",
                fix="show it with `x0tta6bl4 payments check ORDER`",
                order=order_id,
            )
        return order

    def expire_due(self, now: datetime) -> list[Order]:
        """Move pending orders past their expiry to ``expired``; emit events."""
        now_ms = _ms(now)
        with self._write() as db:
            rows = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE state = 'pending' AND expires_ms <= ?",
                (now_ms,),
            ).fetchall()
            expired = []
            for row in rows:
                db.execute(
                    "UPDATE orders SET state = 'expired', updated_ms = ? "
                    "WHERE id = ? AND state = 'pending'",
                    (now_ms, row["id"]),
                )
                order = _order(row)
                self._event(db, order.id, "expired", "no payment before expiry", now_ms)
                expired.append(order)
        return [o for o in (self.get_order(e.id) for e in expired) if o is not None]

    # -- transfers ------------------------------------------------------------

    def known(self, chain: Chain, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """The subset of transfer ``keys`` (tx_id, event_index) already recorded."""
        wanted = set(keys)
        tx_ids = sorted({tx_id for tx_id, _ in wanted})
        found: set[tuple[str, int]] = set()
        for start in range(0, len(tx_ids), 500):
            chunk = tx_ids[start : start + 500]
            rows = self._db.execute(
                f"SELECT tx_id, event_index FROM payments WHERE chain = ? AND tx_id IN "
                f"({', '.join('?' * len(chunk))})",
                (chain.value, *chunk),
            )
            found.update((r[0], r[1]) for r in rows)
        return found & wanted

    def record(
        self,
        stream: str | None,
        transfers: list[Transfer],
        cursor: str | None,
        now: datetime,
        late_window: timedelta,
    ) -> list[Outcome]:
        """Match and record final transfers and advance ``stream``'s cursor, atomically.

        A transfer whose (chain, tx_id, event_index) is already recorded changes nothing
        and comes back with ``new=False``.
        """
        now_ms = _ms(now)
        outcomes = []
        with self._write() as db:
            for transfer in transfers:
                outcomes.append(self._record_one(db, transfer, now_ms, late_window))
            if stream is not None and cursor is not None:
                db.execute(
                    "INSERT INTO cursors (stream, value, updated_ms) VALUES (?, ?, ?) "
                    "ON CONFLICT (stream) DO UPDATE SET value = excluded.value, "
                    "updated_ms = excluded.updated_ms",
                    (stream, cursor, now_ms),
                )
        return outcomes

    def _candidates(self, db: sqlite3.Connection, transfer: Transfer) -> list[Order]:
        if transfer.chain is Chain.TRON:
            rows = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE chain = 'tron' AND address = ? "
                "AND amount = ?",
                (transfer.to_address, transfer.amount),
            )
        else:
            comment = normalize_comment(transfer.comment)
            if comment is None:
                return []
            rows = db.execute(
                f"SELECT {_ORDER_COLUMNS} FROM orders WHERE chain = 'ton' AND address = ? "
                "AND comment = ?",
                (transfer.to_address, comment),
            )
        return [_order(r) for r in rows]

    def _record_one(
        self, db: sqlite3.Connection, transfer: Transfer, now_ms: int, late_window: timedelta
    ) -> Outcome:
        verdict = match(transfer, self._candidates(db, transfer), late_window)
        order = verdict.order
        inserted = db.execute(
            "INSERT INTO payments (chain, tx_id, event_index, currency, amount, from_address, "
            "to_address, comment, block_ms, seen_ms, order_id, status, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (chain, tx_id, event_index) DO NOTHING",
            (
                transfer.chain.value,
                transfer.tx_id,
                transfer.event_index,
                transfer.currency.value if transfer.currency else None,
                transfer.amount,
                transfer.from_address,
                transfer.to_address,
                transfer.comment,
                _ms(transfer.at),
                now_ms,
                order.id if order else None,
                verdict.status.value,
                verdict.detail,
            ),
        ).rowcount
        if not inserted:
            status = TransferStatus(self._status(db, transfer))
            return Outcome(transfer.tx_id, status, None, False, transfer.event_index)
        status = verdict.status
        if order is not None and verdict.new_state is not None:
            paid = verdict.new_state in (OrderState.PAID, OrderState.LATE)
            changed = db.execute(
                "UPDATE orders SET state = ?, tx_id = ?, paid_ms = ?, updated_ms = ? "
                "WHERE id = ? AND state IN ('pending', 'expired')",
                (
                    verdict.new_state.value,
                    transfer.tx_id,
                    now_ms if paid else None,
                    now_ms,
                    order.id,
                ),
            ).rowcount
            if not changed:  # cannot happen inside this transaction; kept as a guard
                status = TransferStatus.EXTRA
                db.execute(
                    "UPDATE payments SET status = 'extra' "
                    "WHERE chain = ? AND tx_id = ? AND event_index = ?",
                    (transfer.chain.value, transfer.tx_id, transfer.event_index),
                )
        if order is not None and verdict.event is not None:
            self._event(db, order.id, verdict.event, verdict.detail, now_ms)
        return Outcome(
            transfer.tx_id, status, order.id if order else None, True, transfer.event_index
        )

    @staticmethod
    def _status(db: sqlite3.Connection, transfer: Transfer) -> str:
        row = db.execute(
            "SELECT status FROM payments WHERE chain = ? AND tx_id = ? AND event_index = ?",
            (transfer.chain.value, transfer.tx_id, transfer.event_index),
        ).fetchone()
        return str(row[0])

    @staticmethod
    def _event(db: sqlite3.Connection, order_id: str, kind: str, detail: str, at_ms: int) -> None:
        db.execute(
            "INSERT INTO events (order_id, kind, detail, at_ms) VALUES (?, ?, ?, ?)",
            (order_id, kind, detail, at_ms),
        )

    def payments(
        self, since: datetime | None = None, statuses: tuple[TransferStatus, ...] = ()
    ) -> list[PaymentRecord]:
        where: list[str] = ["block_ms >= ?"]
        args: list[int | str] = [_ms(since) if since else 0]
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(s.value for s in statuses)
        rows = self._db.execute(
            f"SELECT * FROM payments WHERE {' AND '.join(where)} "
            "ORDER BY block_ms, tx_id, event_index",
            args,
        ).fetchall()
        return [
            PaymentRecord(
                chain=Chain(r["chain"]),
                tx_id=r["tx_id"],
                currency=Currency(r["currency"]) if r["currency"] else None,
                amount=r["amount"],
                from_address=r["from_address"],
                to_address=r["to_address"],
                comment=r["comment"],
                at=datetime.fromtimestamp(r["block_ms"] / 1000, UTC),
                order_id=r["order_id"],
                status=TransferStatus(r["status"]),
                detail=r["detail"],
                event_index=r["event_index"],
            )
            for r in rows
        ]

    # -- events ---------------------------------------------------------------

    def events_since(self, seq: int, limit: int = 500) -> list[OrderEvent]:
        rows = self._db.execute(
            f"SELECT e.seq, e.kind, e.detail, {_ORDER_COLUMNS_O} "
            "FROM events e JOIN orders o ON o.id = e.order_id WHERE e.seq > ? "
            "ORDER BY e.seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [OrderEvent(_order(r), r["kind"], r["detail"], r["seq"]) for r in rows]

    def last_event_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
        return int(row[0])

    # -- streams --------------------------------------------------------------

    def cursor(self, stream: str) -> str | None:
        row = self._db.execute("SELECT value FROM cursors WHERE stream = ?", (stream,)).fetchone()
        return None if row is None else str(row[0])

    def stream_work(self, now: datetime) -> dict[str, StreamWork]:
        """Per stream: open orders and the earliest moment a payment could matter."""
        rows = self._db.execute(
            "SELECT chain, address, SUM(state = 'pending') AS pending, MIN(created_ms) AS since "
            "FROM orders WHERE state = 'pending' OR (state = 'expired' AND reserved_until_ms > ?) "
            "GROUP BY chain, address",
            (_ms(now),),
        ).fetchall()
        return {
            stream_of(Chain(r["chain"]), r["address"]): StreamWork(
                int(r["pending"]), datetime.fromtimestamp(r["since"] / 1000, UTC)
            )
            for r in rows
        }

    def lease(self, owner: str, streams: list[str], ttl: timedelta, now: datetime) -> list[str]:
        """Give ``owner`` its fair share of ``streams`` for ``ttl``; return what it holds."""
        now_ms = _ms(now)
        until = now_ms + int(ttl.total_seconds() * 1000)
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE until_ms <= ?", (now_ms,))
            db.execute("DELETE FROM verifiers WHERE until_ms <= ?", (now_ms,))
            db.execute(
                "INSERT INTO verifiers (owner, until_ms) VALUES (?, ?) ON CONFLICT (owner) "
                "DO UPDATE SET until_ms = excluded.until_ms",
                (owner, until),
            )
            holders: dict[str, str] = {
                r["stream"]: r["owner"] for r in db.execute("SELECT stream, owner FROM leases")
            }
            owners = db.execute("SELECT COUNT(*) FROM verifiers").fetchone()[0]
            share = -(-len(streams) // owners)
            mine = [s for s in streams if holders.get(s) == owner][:share]
            for stream in streams:
                if len(mine) >= share:
                    break
                if stream not in holders:
                    mine.append(stream)
            db.execute("DELETE FROM leases WHERE owner = ?", (owner,))
            db.executemany(
                "INSERT INTO leases (stream, owner, until_ms) VALUES (?, ?, ?)",
                [(s, owner, until) for s in mine],
            )
        return mine

    def release(self, owner: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (owner,))
            db.execute("DELETE FROM verifiers WHERE owner = ?", (owner,))

    # -- reports --------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        by_state = {s.value: 0 for s in OrderState}
        for row in self._db.execute("SELECT state, COUNT(*) FROM orders GROUP BY state"):
            by_state[row[0]] = row[1]
        revenue = {c.value: 0 for c in Currency}
        for row in self._db.execute(
            "SELECT o.currency, SUM(p.amount) FROM payments p JOIN orders o ON o.id = p.order_id "
            "WHERE p.status IN ('credited', 'late') GROUP BY o.currency"
        ):
            revenue[row[0]] = row[1]
        payments = {s.value: 0 for s in TransferStatus}
        for row in self._db.execute("SELECT status, COUNT(*) FROM payments GROUP BY status"):
            payments[row[0]] = row[1]
        return {
            "orders": by_state,
            "revenue": revenue,
            "payments": payments,
            "late": by_state[OrderState.LATE.value],
            "underpaid": by_state[OrderState.UNDERPAID.value],
        }


def _unknown(order_id: str) -> OrderStateError:
    return OrderStateError(
        f"no order {order_id!r}",
        fix="list orders with `x0tta6bl4 payments orders`",
        order=order_id,
    )
