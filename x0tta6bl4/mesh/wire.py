"""The mesh's datagrams: HELLO (one link) and LSA (flooded), in a compact struct layout.

Every datagram is ``header | origin | body | signatures``::

    header   !2sBBBQd   magic b"X0", version, type, flags, seq (u64), ts (f64, wall seconds)
    origin   B + utf-8  the sending (HELLO) or originating (LSA) node
    HELLO    B + utf-8 dest, Q echo_seq, I echo_delay_us, H rx_ratio * 65535
    LSA      H count, then per link: B + utf-8 neighbour, I cost * 1000
    sigs     64-byte Ed25519 when flags has SIG_ED25519, then the ML-DSA-44
             signature (2,420 bytes) when flags has SIG_MLDSA

Signatures cover everything before them, the flags included, so stripping one
breaks the other.  The layout is versioned; a receiver refuses other versions.
Signing and verification live in :mod:`x0tta6bl4.mesh.security`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from x0tta6bl4.errors import SecurityError

__all__ = [
    "MAGIC",
    "VERSION",
    "Flags",
    "Hello",
    "Lsa",
    "Message",
    "MsgType",
    "Parsed",
    "encode",
    "parse",
]

MAGIC = b"X0"
VERSION = 1
MAX_LSA_LINKS = 1024
"""An LSA listing more links than this is refused as malformed."""
COST_SCALE = 1000
"""Costs travel as integer thousandths."""

_HEADER = struct.Struct("!2sBBBQd")
_HELLO = struct.Struct("!QIH")
_COUNT = struct.Struct("!H")
_COST = struct.Struct("!I")
ED25519_SIG_BYTES = 64
MLDSA44_SIG_BYTES = 2420


class MsgType(IntEnum):
    HELLO = 1
    LSA = 2


class Flags(IntFlag):
    NONE = 0
    SIG_ED25519 = 1
    SIG_MLDSA = 2


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
    flags: Flags
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


def encode(message: Message, flags: Flags = Flags.NONE) -> bytes:
    """The signed part of a datagram (append signatures for the set ``flags``)."""
    kind = MsgType.HELLO if isinstance(message, Hello) else MsgType.LSA
    parts = [
        _HEADER.pack(MAGIC, VERSION, kind, flags, message.seq, message.ts),
        _name(message.origin),
    ]
    if isinstance(message, Hello):
        parts.append(_name(message.dest))
        delay_us = min(int(message.echo_delay_s * 1e6), 0xFFFFFFFF)
        ratio = round(min(1.0, max(0.0, message.rx_ratio)) * 0xFFFF)
        parts.append(_HELLO.pack(message.echo_seq, delay_us, ratio))
    else:
        if len(message.links) > MAX_LSA_LINKS:
            raise SecurityError(
                f"LSA of {message.origin} lists {len(message.links)} links (limit {MAX_LSA_LINKS})",
                reason="malformed",
            )
        parts.append(_COUNT.pack(len(message.links)))
        for neighbor, cost in message.links:
            parts.append(_name(neighbor))
            parts.append(_COST.pack(min(round(cost * COST_SCALE), 0xFFFFFFFF)))
    return b"".join(parts)


def _malformed(why: str) -> SecurityError:
    return SecurityError(f"malformed mesh datagram: {why}", reason="malformed")


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise _malformed("truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def name(self) -> str:
        size = self.take(1)[0]
        if size == 0:
            raise _malformed("empty node name")
        try:
            return self.take(size).decode()
        except UnicodeDecodeError as exc:
            raise _malformed("node name is not UTF-8") from exc

    def unpack(self, fmt: struct.Struct) -> tuple[int, ...]:
        return fmt.unpack(self.take(fmt.size))


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
    try:
        flags = Flags(raw_flags)
    except ValueError as exc:
        raise _malformed(f"unknown flags {raw_flags:#x}") from exc
    reader = _Reader(data, _HEADER.size)
    origin = reader.name()
    message: Message
    if kind == MsgType.HELLO:
        dest = reader.name()
        echo_seq, delay_us, ratio = reader.unpack(_HELLO)
        message = Hello(origin, seq, ts, dest, echo_seq, delay_us / 1e6, ratio / 0xFFFF)
    elif kind == MsgType.LSA:
        (count,) = reader.unpack(_COUNT)
        if count > MAX_LSA_LINKS:
            raise _malformed(f"LSA lists {count} links")
        links = []
        for _ in range(count):
            neighbor = reader.name()
            (cost,) = reader.unpack(_COST)
            links.append((neighbor, cost / COST_SCALE))
        message = Lsa(origin, seq, ts, tuple(links))
    else:
        raise _malformed(f"unknown message type {kind}")
    expected = (ED25519_SIG_BYTES if flags & Flags.SIG_ED25519 else 0) + (
        MLDSA44_SIG_BYTES if flags & Flags.SIG_MLDSA else 0
    )
    if len(data) - reader.pos != expected:
        raise _malformed(
            f"{len(data) - reader.pos} trailing bytes where the flags announce {expected}"
        )
    return Parsed(message, flags, data[: reader.pos], data[reader.pos :])
