"""toncenter: incoming TON and USDT-jetton payments to a wallet.

Endpoints:

- ``GET /api/v3/transactions?account=A&start_lt=LT&sort=asc&limit=N``:
  ``{"transactions": [{"account", "hash", "lt", "now", "description":
  {"aborted", ...}, "in_msg": {"source", "destination", "value", "opcode",
  "bounced", "message_content": {"body", "decoded"}}, "out_msgs"}],
  "address_book": {...}}``; ``lt`` and ``value`` are decimal strings.  The
  indexer lists only transactions of committed masterchain blocks: final.
- ``POST /api/v2/runGetMethod {"address": MASTER, "method":
  "get_wallet_address", "stack": [["tvm.Slice", BOC]]}``: ``{"ok": true,
  "result": {"exit_code": 0, "stack": [["cell", {"bytes": BOC}]]}}`` gives the
  jetton wallet the USDT master assigns to our wallet.  Only notifications from
  that wallet are USDT; any other sender is a fake jetton.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.errors import PaymentError
from x0tta6bl4.payments._address import normalize_ton
from x0tta6bl4.payments._boc import (
    JETTON_NOTIFY_OP,
    BocError,
    address_boc,
    read_address_boc,
    read_comment,
    read_jetton_notification,
)
from x0tta6bl4.payments._http import JsonClient, malformed
from x0tta6bl4.payments._matching import CLOCK_SKEW
from x0tta6bl4.payments._models import Chain, Currency, Transfer
from x0tta6bl4.payments._source import Batch, KnownFilter

__all__ = ["TonSource", "ToncenterClient"]

log = loggers.payments.bind(chain="ton")

SERVICE = "toncenter"
PAGE_LIMIT = 256
MAX_PAGES = 500


def _digits(value: Any, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise malformed(SERVICE, f"{what} {value!r} is not a decimal number")


class ToncenterClient:
    """Async toncenter client (keep-alive; ``X-API-Key`` when a key is set)."""

    def __init__(self, base_url: str, api_key: str = "", timeout_s: float = 10.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = JsonClient(SERVICE, base_url, headers, timeout_s)

    async def transactions(
        self, account: str, start_lt: int | None = None, start_utime: int | None = None
    ) -> list[dict[str, Any]]:
        """Every transaction of ``account`` from ``start_lt`` (or ``start_utime``), oldest first."""
        params: dict[str, Any] = {"account": account, "sort": "asc", "limit": PAGE_LIMIT}
        if start_utime is not None:
            params["start_utime"] = start_utime
        txs: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if start_lt is not None:
                params["start_lt"] = start_lt
            body = await self.http.get("/api/v3/transactions", params)
            page = body.get("transactions") if isinstance(body, dict) else None
            if not isinstance(page, list) or not all(isinstance(t, dict) for t in page):
                raise malformed(SERVICE, "no transactions list", account=account)
            txs.extend(page)
            if len(page) < PAGE_LIMIT:
                return txs
            start_lt = _digits(page[-1].get("lt"), "lt") + 1
        raise malformed(SERVICE, f"more than {MAX_PAGES} pages of transactions")

    async def jetton_wallet(self, owner: str, master: str) -> str:
        """The jetton wallet (raw form) that ``master`` assigns to ``owner``."""
        body = await self.http.post(
            "/api/v2/runGetMethod",
            {
                "address": master,
                "method": "get_wallet_address",
                "stack": [["tvm.Slice", address_boc(owner)]],
            },
        )
        try:
            if body.get("ok") is not True:
                raise malformed(SERVICE, f"runGetMethod failed: {body.get('error')}")
            result = body["result"]
            if int(result["exit_code"]) != 0:
                raise malformed(SERVICE, f"get_wallet_address exited {result['exit_code']}")
            entry = result["stack"][0]
            if entry[0] not in ("cell", "slice"):
                raise malformed(SERVICE, f"get_wallet_address returned a {entry[0]}")
            return read_address_boc(entry[1]["bytes"])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise malformed(SERVICE, f"runGetMethod answer lacks {exc}") from exc

    async def aclose(self) -> None:
        await self.http.aclose()


class TonSource:
    """Turns a wallet's transactions into checked TON and USDT-jetton transfers.

    Skipped: transactions without an internal inbound message (our own
    sends), bounced messages, aborted transactions.  A jetton notification
    counts as USDT only when it comes from our USDT jetton wallet.
    """

    def __init__(self, client: ToncenterClient, usdt_master: str | None) -> None:
        self.client = client
        self.usdt_master = usdt_master
        self._jetton_wallets: dict[str, str] = {}

    async def _our_jetton_wallet(self, owner: str) -> str | None:
        if self.usdt_master is None:
            return None
        if owner not in self._jetton_wallets:
            self._jetton_wallets[owner] = await self.client.jetton_wallet(owner, self.usdt_master)
            log.info("jetton_wallet", owner=owner, wallet=self._jetton_wallets[owner])
        return self._jetton_wallets[owner]

    async def fetch(
        self, address: str, cursor: str | None, since: datetime | None, known: KnownFilter
    ) -> Batch:
        if cursor:
            txs = await self.client.transactions(address, start_lt=int(cursor) + 1)
        else:
            start = int((since - CLOCK_SKEW).timestamp()) if since else None
            txs = await self.client.transactions(address, start_utime=start)
        last_lt = int(cursor) if cursor else 0
        for tx in txs:
            last_lt = max(last_lt, _digits(tx.get("lt"), "lt"))
        parsed = [p for p in map(self._parse, txs) if p is not None and p[0].to_address == address]
        our_wallet = None
        if any(sender is not None for _, sender in parsed):
            our_wallet = await self._our_jetton_wallet(address)
        for_us = [
            transfer if sender is None else _check_jetton(transfer, sender, our_wallet)
            for transfer, sender in parsed
        ]
        seen = await known([c.key for c in for_us])
        fresh = [c for c in for_us if c.key not in seen]
        return Batch(fresh, str(last_lt) if txs or cursor else None, 0, len(txs))

    def _parse(self, tx: dict[str, Any]) -> tuple[Transfer, str | None] | None:
        """The transfer an inbound message makes, and the jetton wallet that sent it."""
        msg = tx.get("in_msg")
        description = tx.get("description")
        if not isinstance(description, dict) or not isinstance(tx.get("hash"), str):
            raise malformed(SERVICE, "a transaction lacks hash or description")
        if not isinstance(msg, dict) or not msg.get("source"):
            return None  # external message: our own wallet sending
        if msg.get("bounced") is True or description.get("aborted") is True:
            log.info("ton_skipped", tx=tx["hash"], bounced=msg.get("bounced"))
            return None
        try:
            destination = normalize_ton(str(msg.get("destination")))
            source = normalize_ton(str(msg["source"]))
        except PaymentError as exc:
            raise malformed(SERVICE, f"bad address in message: {exc}") from exc
        content = msg.get("message_content") or {}
        body = content.get("body") if isinstance(content, dict) else None
        at = datetime.fromtimestamp(_digits(tx.get("now"), "now"), UTC)
        tx_id = _tx_id(tx["hash"])
        opcode = msg.get("opcode")
        try:
            if opcode is not None and _opcode(opcode) == JETTON_NOTIFY_OP:
                note = read_jetton_notification(str(body))
                jetton = Transfer(
                    Chain.TON,
                    tx_id,
                    destination,
                    note.sender,
                    Currency.USDT_TON,
                    note.amount,
                    at,
                    note.comment,
                )
                return jetton, source
            comment = read_comment(body)
        except BocError as exc:
            raise malformed(SERVICE, f"message body of {tx['hash']}: {exc}") from exc
        value = _digits(msg.get("value"), "value")
        coins = Transfer(Chain.TON, tx_id, destination, source, Currency.TON, value, at, comment)
        return coins, None

    async def aclose(self) -> None:
        await self.client.aclose()


def _check_jetton(transfer: Transfer, sender_wallet: str, our_wallet: str | None) -> Transfer:
    """A notification is USDT only when our own USDT jetton wallet sent it."""
    if our_wallet is not None and sender_wallet == our_wallet:
        return transfer
    log.warning("fake_jetton", tx=transfer.tx_id, sender_wallet=sender_wallet)
    return replace(
        transfer,
        currency=None,
        reason=f"fake jetton: notification from {sender_wallet}, "
        f"not our USDT jetton wallet {our_wallet}",
    )


def _opcode(value: Any) -> int:
    try:
        return int(str(value), 16) if str(value).startswith("0x") else int(value)
    except ValueError as exc:
        raise malformed(SERVICE, f"opcode {value!r} is not a number") from exc


def _tx_id(hash_b64: str) -> str:
    """toncenter writes hashes in base64; the ledger keys them as lower-case hex."""
    try:
        raw = base64.b64decode(hash_b64.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError as exc:
        raise malformed(SERVICE, f"hash {hash_b64!r} is not base64") from exc
    if len(raw) != 32:
        raise malformed(SERVICE, f"hash {hash_b64!r} is not 32 bytes")
    return raw.hex()
