"""The mesh's datagrams: HELLO (one link) and LSA (flooded), in a compact struct layout.

Every datagram is ``header | origin | body | signatures``::

    header   !2sBBBQd   magic b"X0", version, type, flags, seq (u64), ts (f64, wall seconds)
    origin   B + utf-8  the sending (HELLO) or originating (LSA) node
    HELLO    B + utf-8 dest, Q echo_seq, I echo_delay_us, H rx_ratio * 65535,
             then with KEY_SHARE: 32-byte X25519 share, 8-byte id of the dest's share held
    LSA      H count, then per link: B + utf-8 neighbour, I cost * 1000
    trailer  64-byte Ed25519 when flags has SIG_ED25519, then the ML-DSA-44
             signature (2,420 bytes) when flags has SIG_MLDSA; or, for a HELLO
             with MAC, a 16-byte BLAKE2b tag under the link's key

Signatures and tags cover everything before them, the flags included, so
stripping one breaks the other.  A HELLO is either signed (a handshake, which
carries the sender's key share) or MAC'd, never both.  The layout is versioned;
a receiver refuses other versions.  Signing and verification live in
:mod:`x0tta6bl4.mesh.security`, link keys in :mod:`x0tta6bl4.mesh.linkauth`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from x0tta6bl4.errors import SecurityError

__all__ = [
    "F_ED25519",
    "F_KEY_SHARE",
    "F_MAC",
    "F_MLDSA",
    "KEY_ID_BYTES",
    "MAC_BYTES",
    "MAGIC",
    "SHARE_BYTES",
    "VERSION",
    "Flags",
    "Hello",
    "Lsa",
    "Message",
    "MsgType",
    "Parsed",
    "encode",
    "is_hello",
    "parse",
    "peek",
]

MAGIC = b"X0"
VERSION = 2
MAX_LSA_LINKS = 1024
"""An LSA listing more links than this is refused as malformed."""
COST_SCALE = 1000
"""Costs travel as integer thousandths."""

_HEADER = struct.Struct("!2sBBBQd")
_SEQ = struct.Struct("!Q")
_HELLO = struct.Struct("!QIH")
_COUNT = struct.Struct("!H")
_COST = struct.Struct("!I")
ED25519_SIG_BYTES = 64
MLDSA44_SIG_BYTES = 2420
MAC_BYTES = 16
SHARE_BYTES = 32
KEY_ID_BYTES = 8


class MsgType(IntEnum):
    HELLO = 1
    LSA = 2


_T_HELLO, _T_LSA = int(MsgType.HELLO), int(MsgType.LSA)


class Flags(IntFlag):
    NONE = 0
    SIG_ED25519 = 1
    SIG_MLDSA = 2
    KEY_SHARE = 4
    """A HELLO carrying the sender's link key share (signed: a handshake)."""
    MAC = 8
    """A HELLO authenticated with the link's symmetric key instead of signatures."""


# The flag bits as plain ints: the hot path (every hello) tests bits, and IntFlag
# arithmetic builds a new enum member per operation.
F_ED25519, F_MLDSA, F_KEY_SHARE, F_MAC = 1, 2, 4, 8
_F_ALL = F_ED25519 | F_MLDSA | F_KEY_SHARE | F_MAC
_F_HELLO_ONLY = F_KEY_SHARE | F_MAC
assert int(Flags.SIG_ED25519 | Flags.SIG_MLDSA | Flags.KEY_SHARE | Flags.MAC) == _F_ALL


@dataclass(frozen=True)
class Hello:
    """A probe on the link ``origin`` -> ``dest``."""

    origin: str
    seq: int
    ts: float
    dest: str
    echo_seq: int
    """Newest hello sequence number ``origin`` got from ``dest`` (0: none yet)."""
    echo_delay_s: float
    """Time between receiving ``echo_seq`` and sending this hello."""
    rx_ratio: float
    """Delivery ratio of ``dest``'s hellos as measured by ``origin``, 0..1."""
    key_share: bytes = b""
    """Handshakes only: ``origin``'s X25519 public share for its link keys."""
    knows: bytes = b""
    """Handshakes only: id of the share of ``dest`` that ``origin`` holds (zeros: none)."""


@dataclass(frozen=True)
class Lsa:
    """``origin``'s links and their costs; a newer ``seq`` replaces an older one."""

    origin: str
    seq: int
    ts: float
    links: tuple[tuple[str, float], ...]


Message = Hello | Lsa


@dataclass(frozen=True)
class Parsed:
    """A datagram split into its message, flags, signed bytes and signature trailer."""

    message: Message
    flags: int
    """:class:`Flags` bits (a plain int)."""
    signed: bytes
    trailer: bytes


def _name(value: str) -> bytes:
    raw = value.encode()
    if not 0 < len(raw) < 256:
        raise SecurityError(
            f"node name {value!r} must be 1..255 bytes of UTF-8",
            fix="use shorter node names",
            reason="malformed",
        )
    return bytes((len(raw),)) + raw


def encode(message: Message, flags: int = 0) -> bytes:
    """The signed part of a datagram (append signatures for the set ``flags``)."""
    if isinstance(message, Hello):
        delay_us = min(int(message.echo_delay_s * 1e6), 0xFFFFFFFF)
        ratio = round(min(1.0, max(0.0, message.rx_ratio)) * 0xFFFF)
        parts = [
            _HEADER.pack(MAGIC, VERSION, _T_HELLO, flags, message.seq, message.ts),
            _name(message.origin),
            _name(message.dest),
            _HELLO.pack(message.echo_seq, delay_us, ratio),
        ]
        if flags & F_KEY_SHARE:
            if len(message.key_share) != SHARE_BYTES or len(message.knows) != KEY_ID_BYTES:
                raise _malformed("a key share needs 32 bytes and a key id 8")
            parts.append(message.key_share + message.knows)
    else:
        if len(message.links) > MAX_LSA_LINKS:
            raise SecurityError(
                f"LSA of {message.origin} lists {len(message.links)} links (limit {MAX_LSA_LINKS})",
                reason="malformed",
            )
        parts = [
            _HEADER.pack(MAGIC, VERSION, _T_LSA, flags, message.seq, message.ts),
            _name(message.origin),
            _COUNT.pack(len(message.links)),
        ]
        for neighbor, cost in message.links:
            parts.append(_name(neighbor))
            parts.append(_COST.pack(min(round(cost * COST_SCALE), 0xFFFFFFFF)))
    return b"".join(parts)


def _malformed(why: str) -> SecurityError:
    return SecurityError(f"malformed mesh datagram: {why}", reason="malformed")


def _name_at(data: bytes, pos: int) -> tuple[str, int]:
    """The length-prefixed name at ``pos`` and the position after it."""
    if pos >= len(data):
        raise _malformed("truncated")
    end = pos + 1 + data[pos]
    if end == pos + 1:
        raise _malformed("empty node name")
    if end > len(data):
        raise _malformed("truncated")
    try:
        return data[pos + 1 : end].decode(), end
    except UnicodeDecodeError as exc:
        raise _malformed("node name is not UTF-8") from exc


def _unpack_at(fmt: struct.Struct, data: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    end = pos + fmt.size
    if end > len(data):
        raise _malformed("truncated")
    return fmt.unpack_from(data, pos), end


def is_hello(data: bytes) -> bool:
    """Whether a datagram claims to be a hello (its type byte; nothing is checked)."""
    return len(data) > 3 and data[3] == _T_HELLO


def peek(data: bytes) -> tuple[int, str, int] | None:
    """``(type, origin, seq)`` of a datagram without checking it (None when unreadable);
    lets a receiver drop an exact duplicate before paying for a signature check."""
    if len(data) <= _HEADER.size or data[:2] != MAGIC:
        return None
    size = data[_HEADER.size]
    end = _HEADER.size + 1 + size
    if end > len(data):
        return None
    try:
        origin = data[_HEADER.size + 1 : end].decode()
    except UnicodeDecodeError:
        return None
    return data[3], origin, _SEQ.unpack_from(data, 5)[0]


def parse(data: bytes) -> Parsed:
    """Split a datagram; raises :class:`SecurityError` (reason ``malformed``) on bad layout."""
    if len(data) < _HEADER.size:
        raise _malformed("shorter than the header")
    magic, version, kind, raw_flags, seq, ts = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise _malformed("bad magic")
    if version != VERSION:
        raise SecurityError(
            f"mesh datagram version {version} is not supported (this node speaks {VERSION})",
            fix="run the same x0tta6bl4 version on every node",
            reason="malformed",
        )
    flags = raw_flags
    if flags & ~_F_ALL:
        raise _malformed(f"unknown flags {flags:#x}")
    if flags & _F_HELLO_ONLY and kind != _T_HELLO:
        raise _malformed("key shares and MACs belong to hellos")
    if flags & F_MAC and flags != F_MAC:
        raise _malformed("a MAC'd hello carries no signatures or key share")
    origin, pos = _name_at(data, _HEADER.size)
    message: Message
    if kind == _T_HELLO:
        dest, pos = _name_at(data, pos)
        (echo_seq, delay_us, ratio), pos = _unpack_at(_HELLO, data, pos)
        share = knows = b""
        if flags & F_KEY_SHARE:
            end = pos + SHARE_BYTES + KEY_ID_BYTES
            if end > len(data):
                raise _malformed("truncated")
            share, knows = data[pos : pos + SHARE_BYTES], data[pos + SHARE_BYTES : end]
            pos = end
        message = Hello(
            origin, seq, ts, dest, echo_seq, delay_us / 1e6, ratio / 0xFFFF, share, knows
        )
    elif kind == _T_LSA:
        (count,), pos = _unpack_at(_COUNT, data, pos)
        if count > MAX_LSA_LINKS:
            raise _malformed(f"LSA lists {count} links")
        links = []
        for _ in range(count):
            neighbor, pos = _name_at(data, pos)
            (cost,), pos = _unpack_at(_COST, data, pos)
            links.append((neighbor, cost / COST_SCALE))
        message = Lsa(origin, seq, ts, tuple(links))
    else:
        raise _malformed(f"unknown message type {kind}")
    expected = (
        (ED25519_SIG_BYTES if flags & F_ED25519 else 0)
        + (MLDSA44_SIG_BYTES if flags & F_MLDSA else 0)
        + (MAC_BYTES if flags & F_MAC else 0)
    )
    if len(data) - pos != expected:
        raise _malformed(f"{len(data) - pos} trailing bytes where the flags announce {expected}")
    return Parsed(message, flags, data[:pos], data[pos:])
