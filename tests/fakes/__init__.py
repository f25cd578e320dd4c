"""Real HTTP servers on loopback that speak the wire formats of outside APIs.

``FakeTronGrid`` and ``FakeToncenter`` keep a small chain in memory, serve it
exactly as TronGrid and toncenter do (field names, string-encoded values,
pagination fingerprints and cursors, error bodies, rate limits), and let a
test add transfers, mine blocks and inject faults.  Both run in a thread::

    with FakeTronGrid() as chain:
        tx = chain.add_transfer(to=address, value=12_500_001)
        settings = PaymentsSettings(trongrid_url=chain.url, ...)
"""

from __future__ import annotations

from tests.fakes._server import FakeServer, Fault
from tests.fakes.env import SHOP_TON, SHOP_TRON, payments_settings
from tests.fakes.toncenter import USDT_TON_MAINNET, FakeToncenter, ton_address
from tests.fakes.trongrid import USDT_MAINNET, FakeTronGrid, tron_address

__all__ = [
    "SHOP_TON",
    "SHOP_TRON",
    "USDT_MAINNET",
    "USDT_TON_MAINNET",
    "FakeServer",
    "FakeToncenter",
    "FakeTronGrid",
    "Fault",
    "payments_settings",
    "ton_address",
    "tron_address",
]
