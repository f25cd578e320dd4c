"""TronGrid: incoming USDT-TRC20 transfers to an address, and whether they are final.

Endpoints (TronGrid v1 and the full-node HTTP API):

- ``GET /v1/accounts/{address}/transactions/trc20?only_to=true&only_confirmed=true
  &min_timestamp=MS&limit=200[&fingerprint=F]``: ``{"data": [{"transaction_id",
  "token_info": {"address", "decimals", "symbol", "name"}, "block_timestamp",
  "from", "to", "type", "value"}], "success": true, "meta": {"at", "page_size",
  "fingerprint", "links": {"next"}}}``; ``value`` is a decimal string.  One row per
  Transfer event: a transaction paying us twice is two rows with one
  ``transaction_id``, and no row says which event of the transaction it is.
- ``POST /wallet/gettransactioninfobyid {"value": txid}``: ``{}`` while unknown,
  else ``{"id", "blockNumber", "blockTimeStamp", "receipt": {"result"}, ...}``.
- ``POST /wallet/getnowblock``: ``{"block_header": {"raw_data": {"number"}}}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.errors import PaymentError
from x0tta6bl4.payments._address import normalize_tron
from x0tta6bl4.payments._http import JsonClient, malformed
from x0tta6bl4.payments._matching import CLOCK_SKEW
from x0tta6bl4.payments._models import Chain, Currency, Transfer
from x0tta6bl4.payments._source import Batch, KnownFilter

__all__ = ["Trc20Transfer", "TronGridClient", "TronSource", "number_events"]

log = loggers.payments.bind(chain="tron")

SERVICE = "TronGrid"
PAGE_LIMIT = 200
MAX_PAGES = 500
_USDT_LOOKALIKE = ("usdt", "tether")


class Trc20Transfer:
    """One validated item of the TRC20 history."""

    __slots__ = (
        "at",
        "contract",
        "decimals",
        "event_index",
        "from_",
        "symbol",
        "to",
        "tx_id",
        "value",
    )

    def __init__(self, item: Any) -> None:
        try:
            token = item["token_info"]
            self.tx_id = str(item["transaction_id"])
            self.contract = str(token["address"])
            self.decimals = int(token["decimals"])
            self.symbol = f"{token.get('symbol', '')} {token.get('name', '')}".strip()
            self.at = datetime.fromtimestamp(int(item["block_timestamp"]) / 1000, UTC)
            self.from_ = str(item["from"])
            self.to = str(item["to"])
            value = item["value"]
            kind = item["type"]
        except (KeyError, TypeError, ValueError) as exc:
            raise malformed(SERVICE, f"a TRC20 transfer lacks or mistypes {exc}") from exc
        if not isinstance(value, str) or not value.isdigit():
            raise malformed(SERVICE, f"TRC20 value {value!r} is not a decimal string")
        if len(self.tx_id) != 64:
            raise malformed(SERVICE, f"transaction_id {self.tx_id!r} is not 64 hex digits")
        self.value = int(value) if kind == "Transfer" else -1
        self.event_index = 0
        """Set by :func:`number_events` once the whole history is read."""

    @property
    def key(self) -> tuple[str, int]:
        return (self.tx_id, self.event_index)

    def _rank(self) -> tuple[str, int, str, str]:
        return (self.contract, self.value, self.from_, self.to)

    @property
    def block_ms(self) -> int:
        return int(self.at.timestamp() * 1000)


def number_events(items: list[Trc20Transfer]) -> None:
    """Give each transfer its index among its transaction's transfers to us.

    TronGrid lists one row per Transfer event but no log index, and need not
    list a transaction's rows in the same order twice.  The index is the
    row's rank within its transaction by (contract, value, from, to): a final
    transaction never changes, so every poll numbers its transfers the same
    way, and (tx_id, index) is a stable key that credits each transfer once.
    """
    by_tx: dict[str, list[Trc20Transfer]] = {}
    for item in items:
        by_tx.setdefault(item.tx_id, []).append(item)
    for rows in by_tx.values():
        for index, item in enumerate(sorted(rows, key=Trc20Transfer._rank)):
            item.event_index = index


class TronGridClient:
    """Async TronGrid client (keep-alive; ``TRON-PRO-API-KEY`` when a key is set)."""

    def __init__(self, base_url: str, api_key: str = "", timeout_s: float = 10.0) -> None:
        headers = {"TRON-PRO-API-KEY": api_key} if api_key else {}
        self.http = JsonClient(SERVICE, base_url, headers, timeout_s)

    async def trc20_transfers(
        self, address: str, min_timestamp_ms: int = 0, contract: str | None = None
    ) -> list[Trc20Transfer]:
        """All confirmed incoming TRC20 transfers since ``min_timestamp_ms``, every page."""
        params: dict[str, Any] = {
            "only_to": "true",
            "only_confirmed": "true",
            "limit": PAGE_LIMIT,
            "min_timestamp": min_timestamp_ms,
        }
        if contract:
            params["contract_address"] = contract
        items: list[Trc20Transfer] = []
        for _ in range(MAX_PAGES):
            body = await self.http.get(f"/v1/accounts/{address}/transactions/trc20", params)
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise malformed(SERVICE, "the TRC20 history has no data list", address=address)
            if body.get("success") is False:
                raise malformed(SERVICE, f"success=false: {body.get('error')}", address=address)
            items.extend(Trc20Transfer(item) for item in body["data"])
            meta = body.get("meta") or {}
            fingerprint = meta.get("fingerprint") if isinstance(meta, dict) else None
            if not fingerprint or not body["data"]:
                return items
            params["fingerprint"] = fingerprint
        raise malformed(SERVICE, f"more than {MAX_PAGES} pages of history", address=address)

    async def transaction_info(self, tx_id: str) -> dict[str, Any]:
        """The receipt of a transaction; ``{}`` while the node does not know it."""
        body = await self.http.post("/wallet/gettransactioninfobyid", {"value": tx_id})
        if not isinstance(body, dict):
            raise malformed(SERVICE, "gettransactioninfobyid did not return an object", tx=tx_id)
        return body

    async def now_block(self) -> int:
        body = await self.http.post("/wallet/getnowblock", {})
        try:
            return int(body["block_header"]["raw_data"]["number"])
        except (KeyError, TypeError, ValueError) as exc:
            raise malformed(SERVICE, "getnowblock has no block_header.raw_data.number") from exc

    async def aclose(self) -> None:
        await self.http.aclose()


class TronSource:
    """Turns the TRC20 history of a receiving address into final, checked transfers.

    A transfer counts only if it is a ``Transfer`` of the configured USDT
    contract to our address, its transaction succeeded and has at least
    ``confirmations`` blocks on top.  Another token whose name says USDT or
    Tether is reported as suspicious; other tokens (airdrop spam) are ignored.
    """

    def __init__(self, client: TronGridClient, usdt_contract: str, confirmations: int) -> None:
        self.client = client
        self.usdt = usdt_contract
        self.confirmations = confirmations

    async def fetch(
        self, address: str, cursor: str | None, since: datetime | None, known: KnownFilter
    ) -> Batch:
        start = int(cursor) if cursor else 0
        if since is not None:
            start = max(start, int((since - CLOCK_SKEW).timestamp() * 1000))
        items = await self.client.trc20_transfers(address, start)
        number_events(items)
        recorded = await known([i.key for i in items])
        items = [i for i in items if i.key not in recorded]
        transfers, pending_ms = [], []
        usdt = [i for i in items if i.contract == self.usdt and i.value >= 0]
        head = await self.client.now_block() if usdt else 0
        final_ms, failed = await self._final_boundary(usdt, head)
        for item in usdt:
            if item.tx_id in failed:
                continue
            if item.block_ms <= final_ms:
                transfers.append(self._transfer(item, address))
            else:
                pending_ms.append(item.block_ms)
        transfers.extend(self._suspicious(i, address) for i in items if self._lookalike(i))
        latest = max((i.block_ms for i in items), default=start)
        next_cursor = min(pending_ms) if pending_ms else max(latest, start)
        return Batch(transfers, str(next_cursor), len(pending_ms), len(items))

    async def _final_boundary(self, items: list[Trc20Transfer], head: int) -> tuple[int, set[str]]:
        """The newest block time up to which every transfer is final, and failed probes.

        Blocks are ordered by time, so when a transfer in the block of time T
        has ``confirmations`` blocks on top, so has every transfer at or before
        T: a binary search over block times needs O(log n) receipts, not n.
        (TRC20 history lists ``Transfer`` events, which only succeeded calls emit;
        every probed receipt is checked for SUCCESS as well.)
        """
        by_time: dict[int, Trc20Transfer] = {}
        for item in items:
            by_time.setdefault(item.block_ms, item)
        times = sorted(by_time)
        failed: set[str] = set()
        lo, hi = 0, len(times)  # times[:lo] are final, times[hi:] are not
        while lo < hi:
            mid = (lo + hi) // 2
            probe = by_time[times[mid]]
            depth, succeeded = await self._probe(probe, head)
            if not succeeded:
                failed.add(probe.tx_id)
            if depth is not None and depth >= self.confirmations:
                lo = mid + 1
            else:
                hi = mid
        return (times[lo - 1] if lo else -1), failed

    async def _probe(self, item: Trc20Transfer, head: int) -> tuple[int | None, bool]:
        """Blocks on top of ``item``'s block (None: not in a block yet) and its success."""
        info = await self.client.transaction_info(item.tx_id)
        if not info or "blockNumber" not in info:
            return None, True
        result = (info.get("receipt") or {}).get("result", "SUCCESS")
        if result != "SUCCESS":
            log.warning("trc20_failed_tx", tx=item.tx_id, result=result)
        try:
            return head - int(info["blockNumber"]), result == "SUCCESS"
        except (TypeError, ValueError) as exc:
            raise malformed(SERVICE, "blockNumber is not a number", tx=item.tx_id) from exc

    def _transfer(self, item: Trc20Transfer, address: str) -> Transfer:
        if item.decimals != Currency.USDT_TRC20.decimals:
            raise malformed(SERVICE, f"USDT reported with {item.decimals} decimals", tx=item.tx_id)
        to = _safe_tron(item.to)
        reason = None if to == address else f"recipient {item.to} is not our address {address}"
        return Transfer(
            chain=Chain.TRON,
            tx_id=item.tx_id,
            to_address=address,
            from_address=item.from_,
            currency=Currency.USDT_TRC20,
            amount=item.value,
            at=item.at,
            reason=reason,
            event_index=item.event_index,
        )

    def _lookalike(self, item: Trc20Transfer) -> bool:
        name = item.symbol.lower()
        return item.contract != self.usdt and any(word in name for word in _USDT_LOOKALIKE)

    def _suspicious(self, item: Trc20Transfer, address: str) -> Transfer:
        log.warning("fake_usdt", tx=item.tx_id, contract=item.contract, symbol=item.symbol)
        return Transfer(
            chain=Chain.TRON,
            tx_id=item.tx_id,
            to_address=address,
            from_address=item.from_,
            currency=None,
            amount=max(item.value, 0),
            at=item.at,
            reason=f"fake USDT: token {item.symbol!r} at {item.contract} is not {self.usdt}",
            event_index=item.event_index,
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def _safe_tron(address: str) -> str | None:
    try:
        return normalize_tron(address)
    except PaymentError:
        return None
