"""A toncenter that serves in-memory wallet transactions in toncenter's wire format.

Served: ``GET /api/v3/transactions`` (account, start_lt, end_lt, start_utime,
end_utime, limit, offset, sort) with ``{"transactions": [...],
"address_book": {...}}`` and ``POST /api/v2/runGetMethod`` for a jetton
master's ``get_wallet_address``.  Hashes are base64, lt and values decimal
strings, raw addresses upper-case, as toncenter writes them.  Errors:
v3 ``{"error": ...}``, v2 ``{"ok": false, "error": ..., "code": N}``, rate
limit 429.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes._server import FakeServer, Fault, Request, Response
from x0tta6bl4.errors import PaymentError
from x0tta6bl4.payments._address import normalize_ton, ton_friendly
from x0tta6bl4.payments._boc import (
    JETTON_NOTIFY_OP,
    BocError,
    address_boc,
    comment_boc,
    jetton_notification_boc,
    read_address_boc,
)

__all__ = ["USDT_TON_MAINNET", "FakeToncenter", "TonTx", "ton_address"]

USDT_TON_MAINNET = "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs"
_counter = itertools.count(1)


def ton_address(seed: str) -> str:
    """A deterministic raw address ``0:<hex>`` for ``seed``."""
    return "0:" + hashlib.sha256(seed.encode()).hexdigest()


def _upper(raw: str) -> str:
    workchain, _, account = normalize_ton(raw).partition(":")
    return f"{workchain}:{account.upper()}"


@dataclass
class TonTx:
    account: str
    hash: bytes
    lt: int
    now: int
    source: str
    value: int
    opcode: int
    body: str
    comment: str | None
    bounced: bool
    aborted: bool
    final_at: float

    def wire(self) -> dict[str, Any]:
        decoded = {"type": "text_comment", "comment": self.comment} if self.comment else None
        return {
            "account": _upper(self.account),
            "hash": base64.b64encode(self.hash).decode(),
            "lt": str(self.lt),
            "now": self.now,
            "mc_block_seqno": 40_000_000 + self.lt,
            "trace_id": base64.b64encode(self.hash[::-1]).decode(),
            "prev_trans_hash": base64.b64encode(b"\0" * 32).decode(),
            "prev_trans_lt": str(self.lt - 1),
            "orig_status": "active",
            "end_status": "active",
            "total_fees": "213658",
            "description": {
                "type": "ord",
                "aborted": self.aborted,
                "destroyed": False,
                "credit_first": not self.bounced,
                "storage_ph": {"storage_fees_collected": "27", "status_change": "unchanged"},
                "credit_ph": {"credit": str(self.value)},
                "compute_ph": {
                    "skipped": False,
                    "success": not self.aborted,
                    "msg_state_used": False,
                    "account_activated": False,
                    "gas_fees": "213600",
                    "gas_used": "534",
                    "gas_limit": "0",
                    "mode": 0,
                    "exit_code": 0 if not self.aborted else 33,
                    "vm_steps": 12,
                },
                "action": {"success": not self.aborted, "valid": True, "no_funds": False},
            },
            "block_ref": {"workchain": 0, "shard": "8000000000000000", "seqno": 50_000_000},
            "in_msg": {
                "hash": base64.b64encode(hashlib.sha256(self.hash).digest()).decode(),
                "source": _upper(self.source),
                "destination": _upper(self.account),
                "value": str(self.value),
                "fwd_fee": "266669",
                "ihr_fee": "0",
                "created_lt": str(self.lt - 1),
                "created_at": str(self.now),
                "opcode": f"0x{self.opcode:08x}",
                "ihr_disabled": True,
                "bounce": False,
                "bounced": self.bounced,
                "import_fee": None,
                "message_content": {
                    "hash": base64.b64encode(hashlib.sha256(self.body.encode()).digest()).decode(),
                    "body": self.body,
                    "decoded": decoded,
                },
                "init_state": None,
            },
            "out_msgs": [],
        }


class FakeToncenter(FakeServer):
    """In-memory TON wallets; jetton masters assign wallets deterministically."""

    service = "toncenter"

    def __init__(self) -> None:
        super().__init__()
        self.lt = 47_000_000_000_000
        self.txs: dict[str, list[TonTx]] = {}
        self.route("GET", "/api/v3/transactions", self._transactions)
        self.route("POST", "/api/v2/runGetMethod", self._run_get_method)

    # -- test controls --------------------------------------------------------

    @staticmethod
    def jetton_wallet(owner: str, master: str = USDT_TON_MAINNET) -> str:
        """The jetton wallet (raw) that ``master`` assigns to ``owner`` here."""
        key = f"{normalize_ton(master)}/{normalize_ton(owner)}"
        return "0:" + hashlib.sha256(key.encode()).hexdigest()

    def _add(self, account: str, **fields: Any) -> str:
        with self.lock:
            self.lt += 1_000 + next(_counter)
            digest = hashlib.sha256(f"{account}{self.lt}".encode()).digest()
            now = int(fields.pop("at", None) or time.time())
            tx = TonTx(
                account=normalize_ton(account),
                hash=digest,
                lt=self.lt,
                now=now,
                final_at=time.time(),
                **fields,
            )
            self.txs.setdefault(tx.account, []).append(tx)
        return digest.hex()

    def add_ton_transfer(
        self,
        to: str,
        value: int,
        comment: str | None = None,
        *,
        sender: str | None = None,
        bounced: bool = False,
        aborted: bool = False,
        at: int | None = None,
    ) -> str:
        """An incoming TON transfer; returns the transaction hash as hex."""
        return self._add(
            to,
            source=sender or ton_address("payer"),
            value=value,
            opcode=0,
            body=comment_boc(comment) if comment is not None else "te6cckEBAQEAAgAAAEysuc0=",
            comment=comment,
            bounced=bounced,
            aborted=aborted,
            at=at,
        )

    def add_jetton_transfer(
        self,
        owner: str,
        amount: int,
        comment: str | None = None,
        *,
        master: str = USDT_TON_MAINNET,
        from_wallet: str | None = None,
        sender: str | None = None,
        at: int | None = None,
    ) -> str:
        """A ``transfer_notification`` to ``owner`` from its jetton wallet of ``master``.

        ``from_wallet`` overrides the sending jetton wallet (a fake jetton).
        """
        wallet = from_wallet or self.jetton_wallet(owner, master)
        body = jetton_notification_boc(amount, sender or ton_address("payer"), comment, 7)
        return self._add(
            owner,
            source=wallet,
            value=1,
            opcode=JETTON_NOTIFY_OP,
            body=body,
            comment=None,
            bounced=False,
            aborted=False,
            at=at,
        )

    def rate_limit(self, count: int = 1, retry_after_s: int | None = 1) -> None:
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
        body = json.dumps({"ok": False, "result": "Ratelimit exceed", "code": 429}).encode()
        self.inject(Fault(429, body, count, headers=headers))

    # -- API ------------------------------------------------------------------

    def _transactions(self, request: Request) -> Response:
        q = request.query
        if "account" not in q:
            return Response.json(422, {"error": "field required: account"})
        try:
            account = normalize_ton(q["account"])
            limit = int(q.get("limit", 10))
            offset = int(q.get("offset", 0))
            start_lt, end_lt = int(q.get("start_lt", 0)), int(q.get("end_lt", 2**63))
            start_utime, end_utime = int(q.get("start_utime", 0)), int(q.get("end_utime", 2**40))
        except (ValueError, PaymentError) as exc:
            return Response.json(422, {"error": f"invalid parameter: {exc}"})
        if limit > 1000:
            return Response.json(422, {"error": "limit must be <= 1000"})
        rows = [
            tx
            for tx in self.txs.get(account, [])
            if start_lt <= tx.lt <= end_lt and start_utime <= tx.now <= end_utime
        ]
        rows.sort(key=lambda tx: tx.lt, reverse=q.get("sort", "desc") == "desc")
        page = rows[offset : offset + limit]
        book = {
            _upper(a): {"user_friendly": ton_friendly(a, bounceable=True)}
            for a in {account, *(tx.source for tx in page)}
        }
        return Response.json(
            200, {"transactions": [tx.wire() for tx in page], "address_book": book}
        )

    def _run_get_method(self, request: Request) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        if body.get("method") != "get_wallet_address":
            return Response.json(200, {"ok": True, "result": {"exit_code": 11, "stack": []}})
        try:
            master = normalize_ton(str(body["address"]))
            kind, boc = body["stack"][0]
            if kind != "tvm.Slice":
                raise ValueError(f"stack entry {kind}")
            owner = read_address_boc(boc)
        except (KeyError, IndexError, ValueError, BocError, PaymentError) as exc:
            return Response.json(416, {"ok": False, "error": f"bad request: {exc}", "code": 416})
        wallet = self.jetton_wallet(owner, master)
        cell = address_boc(wallet)
        return Response.json(
            200,
            {
                "ok": True,
                "result": {
                    "@type": "smc.runResult",
                    "gas_used": 4_263,
                    "stack": [["cell", {"bytes": cell, "object": {"data": {"b64": cell}}}]],
                    "exit_code": 0,
                    "@extra": f"{time.time()}:0:0.5",
                },
            },
        )
