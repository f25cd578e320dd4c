"""A TronGrid that serves an in-memory TRC20 history in TronGrid's wire format.

Served: ``GET /v1/accounts/{address}/transactions/trc20`` (only_to,
only_confirmed, min_timestamp, max_timestamp, contract_address, limit <= 200,
fingerprint, newest first, ``meta.fingerprint`` and ``meta.links.next``),
``POST /wallet/gettransactioninfobyid`` and ``POST /wallet/getnowblock``.
Error bodies follow TronGrid: ``{"success": false, "error": ..., "statusCode": N}``.
A transaction may emit several Transfer events (``add_transfer(..., tx_id=)`` of
an existing transaction): the history lists one row per event, all with the
same ``transaction_id``, and the receipt carries one log per event.
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
from x0tta6bl4.payments._address import normalize_tron, tron_from_hex, tron_to_hex

__all__ = ["USDT_MAINNET", "FakeTronGrid", "TronTx", "tron_address"]

USDT_MAINNET = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
_counter = itertools.count(1)


def tron_address(seed: str) -> str:
    """A valid, deterministic base58 TRON address for ``seed``."""
    return tron_from_hex("41" + hashlib.sha256(seed.encode()).hexdigest()[:40])


@dataclass
class TronTx:
    tx_id: str
    contract: str
    symbol: str
    name: str
    decimals: int
    from_: str
    to: str
    value: int
    kind: str
    block_ms: int
    block: int | None
    """None while the transaction waits in the mempool (unconfirmed)."""
    result: str
    final_at: float | None = None
    """Wall time at which it reached the finality depth (for latency measurements)."""
    event_index: int = 0
    """Position of this Transfer event among its transaction's logs."""

    def item(self) -> dict[str, Any]:
        return {
            "transaction_id": self.tx_id,
            "token_info": {
                "symbol": self.symbol,
                "address": self.contract,
                "decimals": self.decimals,
                "name": self.name,
            },
            "block_timestamp": self.block_ms,
            "from": self.from_,
            "to": self.to,
            "type": self.kind,
            "value": str(self.value),
        }


class FakeTronGrid(FakeServer):
    """In-memory TRON with one block per :meth:`mine` call.

    Args:
        finality_depth: blocks on top after which :attr:`TronTx.final_at` is
            stamped (match it to ``payments.tron_confirmations``).
    """

    service = "trongrid"

    def __init__(self, finality_depth: int = 0) -> None:
        super().__init__()
        self.finality_depth = finality_depth
        self.head = 1000
        self.txs: dict[tuple[str, int], TronTx] = {}
        """Transfer events by (transaction id, event index)."""
        self.route("GET", "/v1/accounts/", self._trc20)
        self.route("POST", "/wallet/gettransactioninfobyid", self._info)
        self.route("POST", "/wallet/getnowblock", self._now_block)
        self.route("GET", "/wallet/getnowblock", self._now_block)

    # -- test controls --------------------------------------------------------

    def add_transfer(
        self,
        to: str,
        value: int,
        *,
        contract: str = USDT_MAINNET,
        symbol: str = "USDT",
        name: str = "Tether USD",
        decimals: int = 6,
        sender: str | None = None,
        at_ms: int | None = None,
        pending: bool = False,
        result: str = "SUCCESS",
        kind: str = "Transfer",
        tx_id: str | None = None,
    ) -> str:
        """Put a TRC20 transfer in the head block (or the mempool with ``pending``).

        With the ``tx_id`` of a transaction already added, the transfer is one
        more event of that transaction (same block, time and result).
        """
        tx_id = tx_id or hashlib.sha256(f"tx{next(_counter)}{time.time()}".encode()).hexdigest()
        with self.lock:
            siblings = self._events(tx_id)
        tx = TronTx(
            tx_id=tx_id,
            contract=contract,
            symbol=symbol,
            name=name,
            decimals=decimals,
            from_=sender or tron_address("payer"),
            to=to,
            value=value,
            kind=kind,
            block_ms=at_ms if at_ms is not None else int(time.time() * 1000),
            block=None if pending else self.head,
            result=result,
            event_index=len(siblings),
        )
        if siblings:
            first = siblings[0]
            tx.block, tx.block_ms, tx.result = first.block, first.block_ms, first.result
        with self.lock:
            self.txs[(tx_id, tx.event_index)] = tx
            self._stamp_final()
        return tx_id

    def _events(self, tx_id: str) -> list[TronTx]:
        return sorted(
            (tx for (tid, _), tx in self.txs.items() if tid == tx_id), key=lambda t: t.event_index
        )

    def mine(self, blocks: int = 1) -> None:
        """Add blocks: mempool transactions go into the first one."""
        with self.lock:
            for _ in range(blocks):
                self.head += 1
                for tx in self.txs.values():
                    if tx.block is None:
                        tx.block = self.head
                        tx.block_ms = int(time.time() * 1000)
            self._stamp_final()

    def _stamp_final(self) -> None:
        now = time.time()
        for tx in self.txs.values():
            reached = tx.block is not None and self.head - tx.block >= self.finality_depth
            if tx.final_at is None and reached:
                tx.final_at = now

    def rate_limit(self, count: int = 1, retry_after_s: int | None = 1) -> None:
        """The next ``count`` requests get 429 (TronGrid's body, ``Retry-After``)."""
        body = {"success": False, "error": "Too Many Requests", "statusCode": 429}
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
        self.inject(Fault(429, _json(body), count, headers=headers))

    def frequency_limit(self, count: int = 1, suspended_s: int = 1) -> None:
        """The next ``count`` requests get TronGrid's 403 "frequency limit" answer."""
        body = {
            "success": False,
            "error": f"The key exceeds the frequency limit(15), and the query server "
            f"is suspended for {suspended_s}s",
            "statusCode": 403,
        }
        self.inject(Fault(403, _json(body), count))

    # -- API ------------------------------------------------------------------

    def _trc20(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if len(parts) != 5 or parts[3:] != ["transactions", "trc20"]:
            return self.not_found(request)
        try:
            address = normalize_tron(parts[2])
        except PaymentError:
            return _error(400, f"Invalid address provided: {parts[2]}")
        q = request.query
        try:
            limit = int(q.get("limit", 20))
            min_ts = int(q.get("min_timestamp", 0))
            max_ts = int(q.get("max_timestamp", 2**62))
            offset = _unfingerprint(q["fingerprint"]) if "fingerprint" in q else 0
        except ValueError as exc:
            return _error(400, f"Invalid parameter: {exc}")
        if limit > 200:
            return _error(400, "limit must be <= 200")
        only_to = q.get("only_to") == "true"
        only_from = q.get("only_from") == "true"
        contract = q.get("contract_address")
        rows = [
            tx
            for tx in self.txs.values()
            if (tx.to == address or (not only_to and tx.from_ == address))
            and not (only_from and tx.from_ != address)
            and min_ts <= tx.block_ms <= max_ts
            and (contract is None or tx.contract == contract)
            and not (q.get("only_confirmed") == "true" and tx.block is None)
            and not (q.get("only_unconfirmed") == "true" and tx.block is not None)
            and tx.result == "SUCCESS"  # a reverted call emits no Transfer event
        ]
        rows.sort(key=lambda tx: (tx.block_ms, tx.tx_id, tx.event_index), reverse=True)
        page = rows[offset : offset + limit]
        meta: dict[str, Any] = {"at": int(time.time() * 1000), "page_size": len(page)}
        if offset + limit < len(rows):
            fingerprint = _fingerprint(offset + limit)
            meta["fingerprint"] = fingerprint
            query = "&".join(f"{k}={v}" for k, v in q.items() if k != "fingerprint")
            meta["links"] = {"next": f"{self.url}{request.path}?{query}&fingerprint={fingerprint}"}
        data = [tx.item() for tx in page]
        return Response.json(200, {"data": data, "success": True, "meta": meta})

    def _info(self, request: Request) -> Response:
        tx_id = (request.body or {}).get("value") if isinstance(request.body, dict) else None
        with self.lock:
            events = self._events(str(tx_id))
        if not events or events[0].block is None:
            return Response.json(200, {})
        tx = events[0]
        return Response.json(
            200,
            {
                "id": tx.tx_id,
                "fee": 13_844_850,
                "blockNumber": tx.block,
                "blockTimeStamp": tx.block_ms,
                "contractResult": ["0" * 63 + "1"],
                "contract_address": tron_to_hex(tx.contract),
                "receipt": {
                    "energy_fee": 13_499_850,
                    "energy_usage_total": 64_285,
                    "net_usage": 345,
                    "result": tx.result,
                },
                "log": [
                    {
                        "address": tron_to_hex(event.contract)[2:],
                        "topics": [
                            "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef",
                            "0" * 24 + tron_to_hex(event.from_)[2:],
                            "0" * 24 + tron_to_hex(event.to)[2:],
                        ],
                        "data": f"{event.value:064x}",
                    }
                    for event in events
                ],
            },
        )

    def _now_block(self, request: Request) -> Response:
        number = self.head
        return Response.json(
            200,
            {
                "blockID": f"{number:016x}" + hashlib.sha256(str(number).encode()).hexdigest()[16:],
                "block_header": {
                    "raw_data": {
                        "number": number,
                        "txTrieRoot": "0" * 64,
                        "witness_address": "41" + "ab" * 20,
                        "parentHash": "0" * 64,
                        "version": 30,
                        "timestamp": int(time.time() * 1000),
                    },
                    "witness_signature": "00" * 65,
                },
            },
        )


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _error(status: int, message: str) -> Response:
    return Response.json(status, {"success": False, "error": message, "statusCode": status})


def _fingerprint(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _unfingerprint(token: str) -> int:
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    if not raw.startswith("o:"):
        raise ValueError(f"fingerprint {token!r}")
    return int(raw[2:])
