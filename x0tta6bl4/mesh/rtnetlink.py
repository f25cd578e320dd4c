"""A lean rtnetlink client for the one thing a mesh node does often: write IPv4 routes.

pyroute2 spends 0.8-0.95 ms of CPU on each route it writes and 0.15-0.2 ms on each route
it parses from a dump (``benchmarks/route_writes.py``).  A link failure makes the nodes
near it rewrite routes at once; with 16 nodes sharing two cores, that burst of real-time
CPU starved the kernel's own work (the link change, the link watcher) for up to ~100 ms
(docs/mesh.md, *Carrier loss at 16 nodes, traced*).  Here the messages are packed with
:mod:`struct`, writes go out in batches, and the kernel's acknowledgements are matched
by sequence number: 20-50x less CPU a route.  Links, addresses and lookups stay on
pyroute2.

Errors come back as errno values per write (``0``: done) so the caller decides what a
missing route or interface means; the socket itself raises :class:`OSError`.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "RTM_NEWLINK",
    "RouteEntry",
    "RouteSocket",
    "RouteWrite",
    "close_route_sockets",
    "decode_link",
    "messages",
    "route_socket",
]

RTM_NEWLINK = 16
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
IFLA_IFNAME = 3
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_CREATE, NLM_F_DUMP = 0x100, 0x400, 0x300
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE, RT_SCOPE_NOWHERE = 0, 255
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK = 270, 10, 12

_NLMSGHDR = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")
_IFINFOMSG = struct.Struct("=BxHiII")
_RTATTR = struct.Struct("=HH")
_NLMSGERR = struct.Struct("=i")
_U32 = struct.Struct("=I")
_RECV_BYTES = 1 << 17
_BATCH = 64
"""Writes per datagram.  The kernel queues every ack before ``send`` returns, and 500 at
once overflowed the socket's receive buffer (ENOBUFS, acks lost) in
``benchmarks/route_writes.py``."""
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RouteWrite:
    """One IPv4 /32 route to replace at ``metric`` (``gateway`` None: delete it)."""

    dst: str
    metric: int
    gateway: str | None = None
    oif: int = 0
    source: str | None = None


@dataclass(frozen=True)
class RouteEntry:
    """One IPv4 route of a dump; ``gateway`` and ``oif`` are None where it has none."""

    dst: str | None
    dst_len: int
    gateway: str | None
    oif: int | None
    metric: int
    proto: int
    table: int


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def _rtmsg(dst_len: int, table: int, proto: int, scope: int, kind: int) -> bytes:
    """An IPv4 rtmsg; a table above 255 goes only in RTA_TABLE (as iproute2 sends it)."""
    return _RTMSG.pack(
        socket.AF_INET, dst_len, 0, 0, table if table < 256 else 0, proto, scope, kind, 0
    )


def encode_write(write: RouteWrite, seq: int, proto: int, table: int) -> bytes:
    """The RTM_NEWROUTE (replace or create) or RTM_DELROUTE message for ``write``.

    A delete names the protocol, table and metric, so it can only remove that one route
    of ours (scope NOWHERE and type 0 match any, as ``ip route del`` sends them)."""
    attrs = _attr(RTA_DST, socket.inet_aton(write.dst))
    attrs += _attr(RTA_PRIORITY, _U32.pack(write.metric)) + _attr(RTA_TABLE, _U32.pack(table))
    if write.gateway is None:
        kind, flags = RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK
        body = _rtmsg(32, table, proto, RT_SCOPE_NOWHERE, 0)
    else:
        kind = RTM_NEWROUTE
        flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        body = _rtmsg(32, table, proto, RT_SCOPE_UNIVERSE, RTN_UNICAST)
        attrs += _attr(RTA_GATEWAY, socket.inet_aton(write.gateway))
        attrs += _attr(RTA_OIF, _U32.pack(write.oif))
        if write.source:
            attrs += _attr(RTA_PREFSRC, socket.inet_aton(write.source))
    return _message(kind, flags, seq, body + attrs)


def encode_dump(seq: int, proto: int, table: int) -> bytes:
    """An RTM_GETROUTE dump request of IPv4 routes; with strict checking the kernel
    keeps only ``proto`` in ``table`` (callers filter again: older kernels send all)."""
    payload = _rtmsg(0, table, proto, 0, 0) + _attr(RTA_TABLE, _U32.pack(table))
    return _message(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, payload)


def _message(kind: int, flags: int, seq: int, payload: bytes) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), kind, flags, seq, 0) + payload


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """``(type, flags, seq, payload)`` of each netlink message in one datagram."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, flags, seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise OSError(errno.EBADMSG, f"truncated netlink message ({length} bytes at {offset})")
        yield kind, flags, seq, data[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3


def _attributes(payload: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """``(type, value)`` of each attribute from ``offset`` on (after the fixed header)."""
    while offset + _RTATTR.size <= len(payload):
        length, kind = _RTATTR.unpack_from(payload, offset)
        if length < _RTATTR.size:
            return
        yield kind, payload[offset + _RTATTR.size : offset + length]
        offset += (length + 3) & ~3


def decode_route(payload: bytes) -> RouteEntry:
    """An RTM_NEWROUTE payload (rtmsg and attributes) as a :class:`RouteEntry`."""
    family, dst_len, _src, _tos, table, proto, _scope, _type, _flags = _RTMSG.unpack_from(payload)
    if family != socket.AF_INET:
        raise OSError(errno.EAFNOSUPPORT, f"route of address family {family}, not IPv4")
    dst = gateway = None
    oif = None
    metric = 0
    for kind, value in _attributes(payload, _RTMSG.size):
        if kind == RTA_DST:
            dst = socket.inet_ntoa(value)
        elif kind == RTA_GATEWAY:
            gateway = socket.inet_ntoa(value)
        elif kind == RTA_OIF:
            (oif,) = _U32.unpack(value)
        elif kind == RTA_PRIORITY:
            (metric,) = _U32.unpack(value)
        elif kind == RTA_TABLE:
            (table,) = _U32.unpack(value)
    return RouteEntry(dst, dst_len, gateway, oif, metric, proto, table)


def decode_link(payload: bytes) -> tuple[str | None, int]:
    """Name and ``IFF_*`` flags of an RTM_NEWLINK payload (ifinfomsg and attributes).

    The carrier watcher needs only these two; pyroute2 parses every attribute of the
    link (statistics, address families) for about 0.5 ms a message."""
    _family, _type, _index, flags, _change = _IFINFOMSG.unpack_from(payload)
    for kind, value in _attributes(payload, _IFINFOMSG.size):
        if kind == IFLA_IFNAME:
            return value.split(b"\0", 1)[0].decode(errors="replace"), flags
    return None, flags


class RouteSocket:
    """A NETLINK_ROUTE socket of the namespace the creating thread is in."""

    def __init__(self) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
        )
        self._sock.bind((0, 0))
        self._sock.settimeout(_TIMEOUT_S)
        for option in (NETLINK_CAP_ACK, NETLINK_GET_STRICT_CHK):
            try:
                self._sock.setsockopt(SOL_NETLINK, option, 1)
            except OSError:
                continue  # an older kernel: longer acks, unfiltered dumps; both still work
        self._seq = itertools.count(int.from_bytes(os.urandom(2), "little") << 8)

    def write(self, writes: Sequence[RouteWrite], proto: int, table: int) -> list[int]:
        """Send ``writes`` in order, :data:`_BATCH` to a datagram; the errno of each (0: done)."""
        return [
            code
            for start in range(0, len(writes), _BATCH)
            for code in self._write_batch(writes[start : start + _BATCH], proto, table)
        ]

    def _write_batch(self, writes: Sequence[RouteWrite], proto: int, table: int) -> list[int]:
        seqs = [next(self._seq) & 0xFFFFFFFF for _ in writes]
        batch = (encode_write(w, s, proto, table) for w, s in zip(writes, seqs, strict=True))
        self._sock.send(b"".join(batch))
        batch_seqs = set(seqs)
        codes: dict[int, int] = {}
        while len(codes) < len(seqs):
            for kind, _flags, seq, payload in messages(self._sock.recv(_RECV_BYTES)):
                # Acks of an earlier batch that timed out carry sequence numbers not asked.
                if kind == NLMSG_ERROR and seq in batch_seqs:
                    codes[seq] = -_NLMSGERR.unpack_from(payload)[0]
        return [codes[s] for s in seqs]

    def dump(self, proto: int, table: int) -> list[RouteEntry]:
        """IPv4 routes of protocol ``proto`` in ``table``."""
        seq = next(self._seq) & 0xFFFFFFFF
        self._sock.send(encode_dump(seq, proto, table))
        found: list[RouteEntry] = []
        while True:
            for kind, _flags, got, payload in messages(self._sock.recv(_RECV_BYTES)):
                if got != seq:
                    continue  # an ack of an earlier batch that timed out
                if kind == NLMSG_DONE:
                    return [r for r in found if r.proto == proto and r.table == table]
                if kind == NLMSG_ERROR:
                    code = -_NLMSGERR.unpack_from(payload)[0]
                    raise OSError(code, f"route dump: {os.strerror(code)}")
                if kind == RTM_NEWROUTE:
                    found.append(decode_route(payload))

    @property
    def closed(self) -> bool:
        return self._sock.fileno() == -1

    def close(self) -> None:
        self._sock.close()


_local = threading.local()


def route_socket() -> RouteSocket:
    """The calling thread's socket for the network namespace it is in now.

    A netlink socket belongs to the namespace it was created in, and a thread may move
    (``setns``), so sockets are kept per thread and per namespace (its inode)."""
    netns = os.stat("/proc/thread-self/ns/net").st_ino
    sockets: dict[int, RouteSocket] = _local.__dict__.setdefault("sockets", {})
    if netns not in sockets:
        sockets[netns] = RouteSocket()
    return sockets[netns]


def close_route_sockets() -> None:
    """Close the calling thread's sockets (a thread that used :func:`route_socket`
    calls this before it ends)."""
    for sock in _local.__dict__.pop("sockets", {}).values():
        sock.close()
