"""Pure payments logic: amounts, addresses, URIs, cells, matching, backoff, retry hints."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.errors import ConfigError, PaymentError
from x0tta6bl4.payments import (
    Chain,
    Currency,
    Order,
    OrderState,
    Transfer,
    TransferStatus,
    format_amount,
    normalize_ton,
    normalize_tron,
    parse_amount,
    payment_uri,
    resolve,
    ton_friendly,
    wallet_links,
)
from x0tta6bl4.payments._address import tron_from_hex, tron_to_hex
from x0tta6bl4.payments._boc import (
    BocError,
    address_boc,
    comment_boc,
    jetton_notification_boc,
    read_address_boc,
    read_comment,
    read_jetton_notification,
)
from x0tta6bl4.payments._http import retry_after_of
from x0tta6bl4.payments._matching import match
from x0tta6bl4.payments._trongrid import Trc20Transfer, number_events
from x0tta6bl4.payments._verifier import backoff_delay

USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDT_TON = "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs"
USDT_TON_RAW = "0:b113a994b5024a16719f69139328eb759596c38a25f59028b146fecdc3621dfe"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (12_500_001, Currency.USDT_TRC20, "12.500001 USDT"),
        (5_000_000, Currency.USDT_TON, "5.00 USDT"),
        (2_000_000_001, Currency.TON, "2.000000001 TON"),
        (100_000_000, Currency.TON, "0.10 TON"),
    ],
)
def test_format_and_parse_amount_round_trip(amount: int, currency: Currency, text: str) -> None:
    assert format_amount(amount, currency) == text
    assert parse_amount(text.split()[0], currency) == amount


@pytest.mark.parametrize("bad", ["1.0000001", "-1", "0", "abc", "1e-9"])
def test_parse_amount_rejects_what_is_not_a_usdt_amount(bad: str) -> None:
    with pytest.raises(PaymentError, match="amount") as info:
        parse_amount(bad, Currency.USDT_TRC20)
    assert info.value.fix


def test_tron_addresses_are_checked_and_converted() -> None:
    assert normalize_tron(USDT) == USDT
    assert tron_from_hex(tron_to_hex(USDT)) == USDT
    assert normalize_tron(tron_to_hex(USDT)) == USDT
    broken = USDT[:-1] + ("u" if USDT[-1] != "u" else "v")
    with pytest.raises(PaymentError, match="checksum"):
        normalize_tron(broken)
    with pytest.raises(PaymentError, match="not a TRON address"):
        normalize_tron("T0OIl")


def test_ton_address_forms_all_normalise_to_raw() -> None:
    forms = {
        USDT_TON,
        ton_friendly(USDT_TON),
        ton_friendly(USDT_TON, bounceable=True),
        USDT_TON_RAW.upper().replace("0X", "0x"),
    }
    assert {normalize_ton(f) for f in forms} == {USDT_TON_RAW}
    assert ton_friendly(USDT_TON_RAW).startswith("UQ")
    with pytest.raises(PaymentError, match="not a TON address"):
        normalize_ton("EQ-not-an-address")


def _order(currency: Currency, **fields: object) -> Order:
    values: dict[str, object] = {
        "id": "x0abcdefgh",
        "customer": "tg:1",
        "product": "p",
        "currency": currency,
        "amount": 2_000_000_000,
        "price": 2_000_000_000,
        "address": USDT_TON_RAW,
        "comment": "x0abcdefgh",
        "state": OrderState.PENDING,
        "created_at": T0,
        "expires_at": T0 + timedelta(minutes=15),
    }
    values.update(fields)
    return Order(**values)  # type: ignore[arg-type]


def test_payment_uris_and_wallet_links() -> None:
    ton = _order(Currency.TON)
    friendly = ton_friendly(USDT_TON_RAW)
    assert payment_uri(ton) == (f"ton://transfer/{friendly}?amount=2000000000&text=x0abcdefgh")
    jetton = payment_uri(_order(Currency.USDT_TON, amount=5_000_000), USDT_TON)
    assert "jetton=EQCxE6mU" in jetton and "amount=5000000" in jetton
    links = wallet_links(ton)
    assert links["Tonkeeper"].startswith(f"https://app.tonkeeper.com/transfer/{friendly}?")
    assert links["Tonhub"].startswith(f"https://tonhub.com/transfer/{friendly}?")
    tron = _order(Currency.USDT_TRC20, amount=12_500_001, address=USDT, comment=None)
    assert payment_uri(tron) == f"tron:{USDT}?token={USDT}&amount=12.500001"
    assert wallet_links(tron) == {}


def test_cells_round_trip_and_reject_garbage() -> None:
    long_text = "оплата " * 30
    assert read_comment(comment_boc(long_text)) == long_text
    sender = "-1:" + "01" * 32
    note = read_jetton_notification(jetton_notification_boc(10**12, sender, "x0abc", 9))
    assert (note.amount, note.sender, note.comment, note.query_id) == (10**12, sender, "x0abc", 9)
    assert read_address_boc(address_boc(USDT_TON)) == USDT_TON_RAW
    with pytest.raises(BocError):
        read_comment("bm90IGEgYm9j")
    with pytest.raises(BocError, match="transfer_notification"):
        read_jetton_notification(comment_boc("hello"))


def _transfer(amount: int, at: datetime, **fields: object) -> Transfer:
    values: dict[str, object] = {
        "chain": Chain.TON,
        "tx_id": "t1",
        "to_address": USDT_TON_RAW,
        "from_address": "0:" + "11" * 32,
        "currency": Currency.TON,
        "amount": amount,
        "at": at,
        "comment": "x0abcdefgh",
    }
    values.update(fields)
    return Transfer(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "minutes", "state", "status", "event"),
    [
        (2_000_000_000, 1, OrderState.PENDING, TransferStatus.CREDITED, "paid"),
        (2_500_000_000, 1, OrderState.EXPIRED, TransferStatus.CREDITED, "paid"),
        (1_999_999_999, 1, OrderState.PENDING, TransferStatus.UNDERPAID, "underpaid"),
        (2_000_000_000, 20, OrderState.EXPIRED, TransferStatus.LATE, "late"),
        (2_000_000_000, 1, OrderState.PAID, TransferStatus.EXTRA, "suspicious"),
        (2_000_000_000, 2000, OrderState.EXPIRED, TransferStatus.UNMATCHED, None),
        (2_000_000_000, -5, OrderState.PENDING, TransferStatus.UNMATCHED, None),
    ],
)
def test_match_decides_by_window_amount_and_state(
    amount: int, minutes: int, state: OrderState, status: TransferStatus, event: str | None
) -> None:
    order = _order(Currency.TON, state=state)
    verdict = match(_transfer(amount, T0 + timedelta(minutes=minutes)), [order], timedelta(days=1))
    assert (verdict.status, verdict.event) == (status, event)


def test_match_never_credits_a_suspicious_transfer_or_another_currency() -> None:
    order = _order(Currency.USDT_TON)
    fake = _transfer(2_000_000_000, T0, currency=None, reason="fake jetton")
    verdict = match(fake, [order], timedelta(days=1))
    assert (verdict.status, verdict.new_state, verdict.event) == (
        TransferStatus.SUSPICIOUS,
        None,
        "suspicious",
    )
    ton_for_usdt = match(_transfer(10**10, T0), [order], timedelta(days=1))
    assert ton_for_usdt.status is TransferStatus.UNMATCHED
    assert ton_for_usdt.new_state is None


def test_backoff_grows_with_jitter_caps_and_respects_retry_after() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(1, 12)]
    assert all(0.5 * min(60, 2**n) <= d <= min(60, 2**n) for n, d in enumerate(delays, 1))
    assert max(delays) <= 60
    assert backoff_delay(1, 1.0, 60.0, rng, retry_after_s=30) >= 30


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "12"}, "", 12.0),
        ({}, '{"error": "query server is suspended for 30s"}', 30.0),
        ({}, "", 1.0),
    ],
)
def test_retry_after_is_read_from_header_or_body(
    headers: dict[str, str], body: str, expected: float
) -> None:
    response = httpx.Response(429, headers=headers, text=body)
    assert retry_after_of(response) == expected


def test_resolve_fills_network_defaults_and_rejects_bad_addresses() -> None:
    chains = resolve(PaymentsSettings(tron_addresses=[USDT], ton_addresses=[USDT_TON]))
    assert chains.usdt_trc20_contract == USDT
    assert chains.usdt_ton_master == USDT_TON_RAW
    assert chains.currencies() == [Currency.USDT_TRC20, Currency.TON, Currency.USDT_TON]
    assert chains.trongrid_url == "https://api.trongrid.io"
    with pytest.raises(ConfigError, match="invalid address") as info:
        resolve(PaymentsSettings(tron_addresses=["Tnope"]))
    assert "tron_addresses" in info.value.fix


def _trc20_row(tx_id: str, value: int, sender: str) -> dict[str, object]:
    return {
        "transaction_id": tx_id,
        "token_info": {"address": USDT, "decimals": 6, "symbol": "USDT", "name": "Tether USD"},
        "block_timestamp": 1_767_268_800_000,
        "from": sender,
        "to": USDT,
        "type": "Transfer",
        "value": str(value),
    }


def test_event_numbers_do_not_depend_on_the_order_trongrid_lists_rows_in() -> None:
    tx_a, tx_b = "a" * 64, "b" * 64
    rows = [
        _trc20_row(tx_a, 7, "Tx"),
        _trc20_row(tx_a, 5, "Ty"),
        _trc20_row(tx_a, 5, "Tx"),
        _trc20_row(tx_b, 9, "Tx"),
    ]
    numbered = set()
    for seed in range(6):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        items = [Trc20Transfer(row) for row in shuffled]
        number_events(items)
        numbered.add(frozenset((i.key, i.value, i.from_) for i in items))
    assert numbered == {
        frozenset(
            {((tx_a, 0), 5, "Tx"), ((tx_a, 1), 5, "Ty"), ((tx_a, 2), 7, "Tx"), ((tx_b, 0), 9, "Tx")}
        )
    }
