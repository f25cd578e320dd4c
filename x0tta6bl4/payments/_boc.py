"""The few TON cells payments read and write: comments, jetton notifications, addresses.

Layouts (TL-B, from the TON and TEP-74 specifications)::

    text_comment#00000000 text:SnakeData
    transfer_notification#7362d09c query_id:uint64 amount:(VarUInteger 16)
        sender:MsgAddress forward_payload:(Either Cell ^Cell)
    addr_std$10 anycast:(Maybe Anycast) workchain_id:int8 address:bits256

Cells are (de)serialised with tvm_valuetypes and read with pytonlib's slice.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from bitarray.util import ba2int
from crc32c import crc32c
from pytonlib.utils.tlb import Slice
from tvm_valuetypes.cell import Cell, deserialize_boc

from x0tta6bl4.payments._address import normalize_ton

__all__ = [
    "JETTON_NOTIFY_OP",
    "BocError",
    "JettonNotification",
    "address_boc",
    "comment_boc",
    "jetton_notification_boc",
    "read_address_boc",
    "read_comment",
    "read_jetton_notification",
]

JETTON_NOTIFY_OP = 0x7362D09C
TEXT_COMMENT_OP = 0


class BocError(ValueError):
    """A cell does not hold the layout we expected (mapped to MalformedResponseError above)."""


@dataclass(frozen=True)
class JettonNotification:
    query_id: int
    amount: int
    sender: str
    """Raw ``wc:hex`` form of the wallet that sent the jettons."""
    comment: str | None


def _cell(boc_b64: str) -> Cell:
    try:
        return deserialize_boc(base64.b64decode(boc_b64))
    except (ValueError, AssertionError, IndexError, TypeError) as exc:
        raise BocError(f"not a bag of cells: {exc}") from exc


def _b64(cell: Cell) -> str:
    """Serialise with a CRC32-C like wallets do (tvm_valuetypes' own CRC call is deprecated)."""
    boc = bytearray(cell.serialize_boc(has_idx=False, hash_crc32=False))
    boc[4] |= 0x40  # the hash_crc32 flag
    return base64.b64encode(bytes(boc) + crc32c(bytes(boc)).to_bytes(4, "little")).decode()


def _read_snake_text(slice_: Slice) -> str:
    chunks = []
    while True:
        bits = slice_.bits_left() - slice_.bits_left() % 8
        chunks.append(slice_.read_next(bits).tobytes())
        if slice_.refs_left() == 0:
            break
        slice_ = slice_.read_next_ref()
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BocError("comment is not UTF-8") from exc


def _read_address(slice_: Slice) -> str | None:
    tag = ba2int(slice_.read_next(2))
    if tag == 0:
        return None
    if tag != 2 or slice_.read_next(1).any():
        raise BocError("only addr_std without anycast is supported")
    workchain = ba2int(slice_.read_next(8), signed=True)
    return f"{workchain}:{slice_.read_next(256).tobytes().hex()}"


def _read_comment_payload(slice_: Slice) -> str | None:
    if slice_.bits_left() < 32:
        return None
    if ba2int(slice_.read_next(32)) != TEXT_COMMENT_OP:
        return None
    return _read_snake_text(slice_)


def read_comment(boc_b64: str | None) -> str | None:
    """The text comment of a message body, or None when it carries none."""
    if not boc_b64:
        return None
    try:
        return _read_comment_payload(Slice(_cell(boc_b64)))
    except (ValueError, IndexError) as exc:
        raise BocError(f"cannot read the comment: {exc}") from exc


def read_jetton_notification(boc_b64: str) -> JettonNotification:
    """Parse a ``transfer_notification`` body (TEP-74)."""
    try:
        slice_ = Slice(_cell(boc_b64))
        if ba2int(slice_.read_next(32)) != JETTON_NOTIFY_OP:
            raise BocError("not a transfer_notification")
        query_id = ba2int(slice_.read_next(64))
        amount = slice_.read_var_uint(16)
        sender = _read_address(slice_)
        if sender is None:
            raise BocError("notification without a sender")
        payload = slice_.read_next_ref() if slice_.read_next(1).any() else slice_
        comment = _read_comment_payload(payload)
    except (ValueError, IndexError) as exc:
        raise BocError(f"cannot read the jetton notification: {exc}") from exc
    return JettonNotification(query_id, amount, sender, comment)


def read_address_boc(boc_b64: str) -> str:
    """A cell that holds one MsgAddress -> raw ``wc:hex``."""
    try:
        address = _read_address(Slice(_cell(boc_b64)))
    except (ValueError, IndexError) as exc:
        raise BocError(f"cannot read the address: {exc}") from exc
    if address is None:
        raise BocError("the cell holds addr_none")
    return address


def _put_address(cell: Cell, address: str) -> None:
    workchain, _, account = normalize_ton(address).partition(":")
    cell.data.put_arbitrary_uint(0b100, 3)
    cell.data.put_arbitrary_uint(int(workchain) & 0xFF, 8)
    cell.data.put_bytes(bytes.fromhex(account))


def _put_text(cell: Cell, text: str) -> None:
    data = text.encode("utf-8")
    cell.data.put_arbitrary_uint(TEXT_COMMENT_OP, 32)
    room = (1023 - 32) // 8
    cell.data.put_bytes(data[:room])
    rest, current = data[room:], cell
    while rest:
        nxt = Cell()
        nxt.data.put_bytes(rest[:127])
        current.refs.append(nxt)
        rest, current = rest[127:], nxt


def address_boc(address: str) -> str:
    """A cell holding ``address`` as MsgAddress (the slice ``get_wallet_address`` takes)."""
    cell = Cell()
    _put_address(cell, address)
    return _b64(cell)


def comment_boc(text: str) -> str:
    """A message body carrying a text comment."""
    cell = Cell()
    _put_text(cell, text)
    return _b64(cell)


def jetton_notification_boc(
    amount: int, sender: str, comment: str | None = None, query_id: int = 0
) -> str:
    """A ``transfer_notification`` body; the comment goes in a referenced cell."""
    cell = Cell()
    cell.data.put_arbitrary_uint(JETTON_NOTIFY_OP, 32)
    cell.data.put_arbitrary_uint(query_id, 64)
    size = (amount.bit_length() + 7) // 8
    cell.data.put_arbitrary_uint(size, 4)
    if size:
        cell.data.put_arbitrary_uint(amount, size * 8)
    _put_address(cell, sender)
    if comment is None:
        cell.data.put_arbitrary_uint(0, 1)
    else:
        cell.data.put_arbitrary_uint(1, 1)
        payload = Cell()
        _put_text(payload, comment)
        cell.refs.append(payload)
    return _b64(cell)
