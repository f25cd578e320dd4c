"""Payment verification end to end: Ledger + PaymentVerifier actors against loopback chains.

N open orders on several receiving addresses (USDT-TRC20, TON, USDT on TON) and
M transfers streamed into a loopback TronGrid and toncenter at a steady rate:
good payments mixed with adversarial ones (fake USDT contract, fake jetton,
amount off by one, bounced TON, wrong recipient, underpaid).  Run with one
verifier actor and with k, same load.  Asserts inside the run: zero double
credits, zero missed payments, zero false accepts.

Metrics: ``verified_per_min`` (k verifiers), ``verified_per_min_1_verifier``,
``double_credits``, ``missed``, ``false_accepts``, ``detect_latency.p99_s``
(from a transfer becoming final to its order being paid, k verifiers).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._harness import console, parse_args, report
from tests.fakes import (
    USDT_MAINNET,
    USDT_TON_MAINNET,
    FakeToncenter,
    FakeTronGrid,
    ton_address,
    tron_address,
)
from x0tta6bl4.actors.ledger import spawn_ledger
from x0tta6bl4.actors.payment_verifier import spawn_verifier
from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray
from x0tta6bl4.config import PaymentsSettings, RaySettings
from x0tta6bl4.payments import Currency, Ledger, Order, resolve

NAME = "payments"
ADDRESSES_PER_CHAIN = 6
POLL_INTERVAL_S = 0.5
BLOCK_S = 0.5
PRICES = {
    Currency.USDT_TRC20: 10_000_000,
    Currency.TON: 2_000_000_000,
    Currency.USDT_TON: 5_000_000,
}
# Per 100 transfers: 75 good, 25 adversarial.
GOOD = [(Currency.USDT_TRC20, 40), (Currency.TON, 20), (Currency.USDT_TON, 15)]
BAD = [
    ("fake_usdt", 5),
    ("off_by_one", 5),
    ("wrong_recipient", 3),
    ("bounced", 4),
    ("fake_jetton", 4),
    ("underpaid", 4),
]


@dataclass
class Plan:
    """Orders and the transfers aimed at them, with what each transfer should do."""

    good: list[Order] = field(default_factory=list)
    bad: list[tuple[str, Order]] = field(default_factory=list)
    idle: list[Order] = field(default_factory=list)


def settings_for(tron: FakeTronGrid, ton: FakeToncenter, verifiers: int) -> PaymentsSettings:
    return PaymentsSettings(
        enabled=True,
        tron_addresses=[tron_address(f"shop{i}") for i in range(ADDRESSES_PER_CHAIN)],
        ton_addresses=[ton_address(f"shop{i}") for i in range(ADDRESSES_PER_CHAIN)],
        trongrid_url=tron.url,
        toncenter_url=ton.url,
        usdt_trc20_contract=USDT_MAINNET,
        usdt_ton_master=USDT_TON_MAINNET,
        tron_confirmations=1,
        poll_interval_s=POLL_INTERVAL_S,
        idle_poll_interval_s=2.0,
        backoff_max_s=2.0,
        verifiers=verifiers,
    )


async def make_orders(settings: PaymentsSettings, db: Path, transfers: int) -> Plan:
    """Open the orders in the ledger file before the actors start (not timed)."""
    ledger = Ledger(db, settings, resolve(settings))
    plan = Plan()
    rounds = transfers // 100
    try:
        for _ in range(rounds):
            for currency, count in GOOD:
                for _ in range(count):
                    plan.good.append(
                        await ledger.create_order("bench", "p", currency, PRICES[currency])
                    )
            for kind, count in BAD:
                currency = {
                    "fake_usdt": Currency.USDT_TRC20,
                    "off_by_one": Currency.USDT_TRC20,
                    "wrong_recipient": Currency.USDT_TRC20,
                    "fake_jetton": Currency.USDT_TON,
                }.get(kind, Currency.TON)
                for _ in range(count):
                    order = await ledger.create_order("bench", "p", currency, PRICES[currency])
                    plan.bad.append((kind, order))
            for _ in range(20):  # open orders nobody pays
                plan.idle.append(
                    await ledger.create_order(
                        "bench", "p", Currency.USDT_TRC20, PRICES[Currency.USDT_TRC20]
                    )
                )
    finally:
        await ledger.close()
    return plan


def send(tron: FakeTronGrid, ton: FakeToncenter, kind: str, order: Order) -> str:
    """Put one transfer on the fake chain; return its transaction id."""
    if kind == "good" and order.currency is Currency.USDT_TRC20:
        return tron.add_transfer(order.address, order.amount)
    if kind == "good" and order.currency is Currency.TON:
        return ton.add_ton_transfer(order.address, order.amount, order.comment)
    if kind == "good":
        return ton.add_jetton_transfer(order.address, order.amount, order.comment)
    if kind == "fake_usdt":
        return tron.add_transfer(order.address, order.amount, contract=tron_address("scam"))
    if kind == "off_by_one":
        return tron.add_transfer(order.address, order.amount - 1)
    if kind == "wrong_recipient":
        return tron.add_transfer(tron_address("elsewhere"), order.amount)
    if kind == "bounced":
        return ton.add_ton_transfer(order.address, order.amount, order.comment, bounced=True)
    if kind == "fake_jetton":
        scam = ton_address("scam")
        return ton.add_jetton_transfer(order.address, order.amount, order.comment, master=scam)
    return ton.add_ton_transfer(order.address, order.amount - 1, order.comment)  # underpaid


def paid_rows(db: Path) -> dict[str, tuple[int, str]]:
    """order id -> (paid_ms, tx_id) for paid orders, read beside the ledger (a WAL reader)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT id, paid_ms, tx_id FROM orders WHERE state = 'paid'")
        return {r[0]: (r[1], r[2]) for r in rows}


def double_credits(db: Path) -> int:
    """Payments credited to an order beyond its first (the ledger must keep this 0)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM payments "
            "WHERE status IN ('credited', 'late') GROUP BY order_id HAVING n > 1)"
        ).fetchone()
        return int(row[0])


class Miner:
    """Makes a TRON block every BLOCK_S while the driver streams transfers."""

    def __init__(self, tron: FakeTronGrid) -> None:
        self.tron = tron
        self.next = time.time() + BLOCK_S

    def tick(self) -> None:
        if time.time() >= self.next:
            self.tron.mine(1)
            self.next += BLOCK_S


def run_phase(verifiers: int, transfers: int, rate_per_s: float, namespace: str) -> dict[str, Any]:
    """One run: orders, actors, a steady stream of transfers, then the checks."""
    with (
        FakeTronGrid(finality_depth=1) as tron,
        FakeToncenter() as ton,
        tempfile.TemporaryDirectory() as tmp,
    ):
        db = Path(tmp) / "payments.sqlite"
        settings = settings_for(tron, ton, verifiers)
        plan = asyncio.run(make_orders(settings, db, transfers))
        work = [("good", o) for o in plan.good] + plan.bad
        random.Random(7).shuffle(work)
        ledger = spawn_ledger(settings, str(db), namespace)
        actors = [spawn_verifier(settings, i, namespace) for i in range(verifiers)]
        ray.get([a.status.remote() for a in actors])
        try:
            good_tx = stream_and_wait(tron, ton, work, rate_per_s, db)
        finally:
            for actor in actors:
                ray.get(actor.stop.remote())
                ray.kill(actor)
            ray.get(ledger.close.remote())
            ray.kill(ledger)
        paid = paid_rows(db)
        final_at = _final_times(tron, ton)
        right = {i: paid[i][0] / 1000 for i in good_tx.keys() & paid.keys()}
        right = {i: t for i, t in right.items() if paid[i][1] == good_tx[i]}
        latencies = [right[i] - final_at[good_tx[i]] for i in right]
        first_final = min(final_at[good_tx[i]] for i in right)
        return {
            "verifiers": verifiers,
            "offered_per_min": rate_per_s * 60 * len(plan.good) / len(work),
            "verified": len(right),
            "verified_per_min": len(right) / (max(right.values()) - first_final) * 60,
            "missed": len(good_tx.keys() - paid.keys()),
            "false_accepts": len(paid.keys() - right.keys()),
            "double_credits": double_credits(db),
            "p50_s": float(np.percentile(latencies, 50)),
            "p99_s": float(np.percentile(latencies, 99)),
        }


def stream_and_wait(
    tron: FakeTronGrid,
    ton: FakeToncenter,
    work: list[tuple[str, Order]],
    rate_per_s: float,
    db: Path,
) -> dict[str, str]:
    """Stream the transfers at a steady rate, then wait (30 s at most) for the good ones."""
    miner = Miner(tron)
    good_tx: dict[str, str] = {}
    start = time.time()
    for i, (kind, order) in enumerate(work):
        while (wait := start + i / rate_per_s - time.time()) > 0:
            time.sleep(min(wait, 0.005))
        miner.tick()
        tx_id = send(tron, ton, kind, order)
        if kind == "good":
            good_tx[order.id] = tx_id
    deadline = time.time() + 30
    while time.time() < deadline and not good_tx.keys() <= paid_rows(db).keys():
        miner.tick()
        time.sleep(0.1)
    return good_tx


def _final_times(tron: FakeTronGrid, ton: FakeToncenter) -> dict[str, float]:
    times = {tx.tx_id: tx.final_at for tx in tron.txs.values() if tx.final_at is not None}
    for txs in ton.txs.values():
        times.update({tx.hash.hex(): tx.final_at for tx in txs})
    return times


def main() -> None:
    args = parse_args(NAME, __doc__.splitlines()[0])
    transfers = 2_000 if args.quick else 8_000
    # Transfers offered per second; 75 % are good: 300/s = 13,500 payments a minute.
    rate = 300.0 if args.quick else 400.0
    k = max(2, min(4, os.cpu_count() or 2))
    load_before = os.getloadavg()[0]
    ensure_ray(RaySettings(dashboard=False, namespace="x0tta6bl4-bench"))
    try:
        one = run_phase(1, transfers, rate, "x0tta6bl4-bench")
        console.print(f"1 verifier: {one}")
        many = run_phase(k, transfers, rate, "x0tta6bl4-bench")
        console.print(f"{k} verifiers: {many}")
    finally:
        shutdown_ray()
    metrics = {
        "verified_per_min": many["verified_per_min"],
        "verified_per_min_1_verifier": one["verified_per_min"],
        "offered_per_min": many["offered_per_min"],
        "double_credits": one["double_credits"] + many["double_credits"],
        "missed": one["missed"] + many["missed"],
        "false_accepts": one["false_accepts"] + many["false_accepts"],
        "detect_latency": {
            "p50_s": many["p50_s"],
            "p99_s": many["p99_s"],
            "p99_s_1_verifier": one["p99_s"],
        },
        "transfers": transfers,
        "verifiers": k,
        "poll_interval_s": POLL_INTERVAL_S,
        "speedup": many["verified_per_min"] / one["verified_per_min"],
    }
    notes = {
        "load": "75 % good, 25 % adversarial transfers, streamed at a steady rate",
        "setup": "fakes run in the driver process and share the CPUs with the actors",
        "load_average": f"1-min load {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"on {os.cpu_count()} CPUs (other work on the machine slows every figure)",
    }
    report(NAME, args, metrics, notes=notes)
    assert metrics["double_credits"] == 0, "double credit"
    assert metrics["missed"] == 0, "missed payment"
    assert metrics["false_accepts"] == 0, "false accept"


if __name__ == "__main__":
    main()
