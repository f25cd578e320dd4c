"""The interface between a verifier and one chain's API client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from x0tta6bl4.payments._models import Transfer

__all__ = ["Batch", "ChainSource", "KnownFilter"]

KnownFilter = Callable[[list[tuple[str, int]]], Awaitable[set[tuple[str, int]]]]
"""Given transfer keys (tx_id, event_index), returns those the ledger already holds
(to skip re-checking them)."""


@dataclass(frozen=True)
class Batch:
    """What one poll of one stream found.

    ``transfers`` are final and new to the ledger; ``cursor`` is where the next
    poll starts (it never moves past a transfer that is not final yet);
    ``pending`` counts transfers seen but not final.
    """

    transfers: list[Transfer]
    cursor: str | None
    pending: int = 0
    seen: int = 0


class ChainSource(Protocol):
    """Polls one chain for incoming payments to one address."""

    async def fetch(
        self, address: str, cursor: str | None, since: datetime | None, known: KnownFilter
    ) -> Batch: ...

    async def aclose(self) -> None: ...
