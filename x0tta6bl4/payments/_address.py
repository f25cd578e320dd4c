"""Address forms: TRON base58check and TON raw / bounceable / non-bounceable.

Addresses are compared only after normalisation: TRON to base58, TON to the
raw ``workchain:hex`` form (pytonlib parses every user-friendly variant).
"""

from __future__ import annotations

import functools
import hashlib
import re

from pytonlib.utils.address import account_forms, detect_address

from x0tta6bl4.errors import PaymentError

__all__ = [
    "normalize_ton",
    "normalize_tron",
    "ton_friendly",
    "tron_from_hex",
    "tron_to_hex",
]

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_TRON_PREFIX = 0x41
_RAW_TON = re.compile(r"-?\d{1,3}:[0-9a-fA-F]{64}")


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = ""
    while number:
        number, rem = divmod(number, 58)
        out = _B58[rem] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58.find(char)
        if index < 0:
            raise ValueError(f"{char!r} is not a base58 character")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def tron_from_hex(hex_address: str) -> str:
    """``41...`` (21 bytes hex, as the full-node API writes it) -> base58 ``T...``."""
    text = hex_address.removeprefix("0x")
    try:
        payload = bytes.fromhex(text)
    except ValueError as exc:
        raise PaymentError(f"{hex_address!r} is not a hex TRON address") from exc
    if len(payload) == 20:
        payload = bytes([_TRON_PREFIX]) + payload
    if len(payload) != 21 or payload[0] != _TRON_PREFIX:
        raise PaymentError(f"{hex_address!r} is not a hex TRON address (41 + 20 bytes)")
    return _b58encode(payload + _checksum(payload))


def tron_to_hex(address: str) -> str:
    """Base58 ``T...`` -> ``41...`` hex."""
    return _tron_payload(address).hex()


def _tron_payload(address: str) -> bytes:
    try:
        raw = _b58decode(address)
    except ValueError as exc:
        raise PaymentError(
            f"{address!r} is not a TRON address: {exc}",
            fix="use the base58 form that starts with T",
        ) from exc
    payload, check = raw[:-4], raw[-4:]
    if len(raw) != 25 or payload[0] != _TRON_PREFIX or _checksum(payload) != check:
        raise PaymentError(
            f"{address!r} is not a valid TRON address (length, prefix or checksum)",
            fix="copy the address again; base58 TRON addresses are 34 characters from T",
        )
    return payload


@functools.lru_cache(maxsize=65536)
def normalize_tron(address: str) -> str:
    """Validate a TRON address in base58 or hex and return its base58 form."""
    text = address.strip()
    if text.startswith(("41", "0x41")) and len(text.removeprefix("0x")) == 42:
        return tron_from_hex(text)
    _tron_payload(text)
    return text


@functools.lru_cache(maxsize=65536)
def normalize_ton(address: str) -> str:
    """Any TON address form -> raw ``workchain:hex`` (lower case).

    The raw form toncenter answers with is handled here; user-friendly forms
    go through pytonlib (whose pure-Python CRC is slow, hence the cache).
    """
    if _RAW_TON.fullmatch(address):
        workchain, _, account = address.partition(":")
        return f"{int(workchain)}:{account.lower()}"
    try:
        raw: str = detect_address(address.strip())["raw_form"]
    except Exception as exc:  # pytonlib raises bare Exception for every parse failure
        raise PaymentError(
            f"{address!r} is not a TON address: {exc}",
            fix="use the raw (0:...) or user-friendly (EQ.../UQ...) form",
        ) from exc
    workchain, _, account = raw.partition(":")
    return f"{int(workchain)}:{account.lower()}"


def ton_friendly(address: str, *, bounceable: bool = False, testnet: bool = False) -> str:
    """The URL-safe user-friendly form wallets show (``UQ...`` non-bounceable by default)."""
    forms = account_forms(normalize_ton(address), test_only=testnet)
    key = "bounceable" if bounceable else "non_bounceable"
    friendly: str = forms[key]["b64url"]
    return friendly
