"""Per-network defaults and the resolved chain configuration of one deployment."""

from __future__ import annotations

from dataclasses import dataclass

from x0tta6bl4.config import PaymentsSettings
from x0tta6bl4.errors import ConfigError, PaymentError
from x0tta6bl4.payments._address import normalize_ton, normalize_tron
from x0tta6bl4.payments._models import Currency

__all__ = ["ChainConfig", "resolve"]

TRONGRID_URLS = {
    "mainnet": "https://api.trongrid.io",
    "shasta": "https://api.shasta.trongrid.io",
    "nile": "https://nile.trongrid.io",
}
TONCENTER_URLS = {"mainnet": "https://toncenter.com", "testnet": "https://testnet.toncenter.com"}
USDT_TRC20 = {
    "mainnet": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
    "nile": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
}
USDT_TON_MASTER = {"mainnet": "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs"}


@dataclass(frozen=True)
class ChainConfig:
    """Everything the clients and the matcher need, validated and normalised once."""

    trongrid_url: str
    toncenter_url: str
    tron_addresses: tuple[str, ...]
    ton_addresses: tuple[str, ...]
    """Raw ``wc:hex`` form."""
    usdt_trc20_contract: str | None
    usdt_ton_master: str | None
    """Raw ``wc:hex`` form."""
    ton_testnet: bool

    def currencies(self) -> list[Currency]:
        """The currencies this deployment can take."""
        offered = []
        if self.tron_addresses and self.usdt_trc20_contract:
            offered.append(Currency.USDT_TRC20)
        if self.ton_addresses:
            offered.append(Currency.TON)
            if self.usdt_ton_master:
                offered.append(Currency.USDT_TON)
        return offered

    def addresses(self, currency: Currency) -> tuple[str, ...]:
        return self.tron_addresses if currency is Currency.USDT_TRC20 else self.ton_addresses

    def token(self, currency: Currency) -> str | None:
        """The token contract / jetton master of a USDT currency; None for TON."""
        if currency is Currency.USDT_TRC20:
            return self.usdt_trc20_contract
        if currency is Currency.USDT_TON:
            return self.usdt_ton_master
        return None


def resolve(settings: PaymentsSettings) -> ChainConfig:
    """Fill network defaults and normalise addresses; bad values raise ConfigError."""
    try:
        tron = tuple(dict.fromkeys(normalize_tron(a) for a in settings.tron_addresses))
        ton = tuple(dict.fromkeys(normalize_ton(a) for a in settings.ton_addresses))
        contract = settings.usdt_trc20_contract or USDT_TRC20.get(settings.tron_network)
        master = settings.usdt_ton_master or USDT_TON_MASTER.get(settings.ton_network)
        contract = normalize_tron(contract) if contract else None
        master = normalize_ton(master) if master else None
    except PaymentError as exc:
        raise ConfigError(
            f"payments settings hold an invalid address: {exc}",
            fix="correct payments.tron_addresses / ton_addresses / usdt_* settings",
        ) from exc
    return ChainConfig(
        trongrid_url=(settings.trongrid_url or TRONGRID_URLS[settings.tron_network]).rstrip("/"),
        toncenter_url=(settings.toncenter_url or TONCENTER_URLS[settings.ton_network]).rstrip("/"),
        tron_addresses=tron,
        ton_addresses=ton,
        usdt_trc20_contract=contract,
        usdt_ton_master=master,
        ton_testnet=settings.ton_network == "testnet",
    )
