"""Streams of real packets across a mesh, the outages in them, and reachability.

:class:`EchoStream` sends a UDP datagram every 10 ms from one node's loopback
to an echo responder on another's and records when each answer comes back;
the outage of a fault is the longest gap between answers around it.
:func:`reachability` tells in one shot which node pairs answer an ICMP echo
(how the benchmark and tests decide that a mesh has converged).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from x0tta6bl4.errors import MeshError
from x0tta6bl4.mesh.nsutil import in_netns, set_realtime

__all__ = ["ECHO_PORT", "EchoStream", "StreamStats", "longest_gap", "reachability"]

ECHO_PORT = 7211
"""UDP port of the echo stream's responder (not the mesh's own port)."""
_PACKET = struct.Struct("!Qd")


def longest_gap(times: list[float], start: float, end: float) -> float:
    """Longest interval without a reply from the last reply at or before ``start`` to ``end``.

    ``end`` counts as a reply, so a stream that never recovers reports the time
    from its last reply to ``end``; ``start`` does when no reply preceded it.
    """
    ordered = sorted(times)
    before = [t for t in ordered if t <= start]
    points = [before[-1] if before else start, *(t for t in ordered if start < t <= end), end]
    return max(b - a for a, b in itertools.pairwise(points))


@dataclass
class StreamStats:
    sent: int
    received: int
    lost_sequences: list[int] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return len(self.lost_sequences)


def _udp(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, port))
    sock.settimeout(0.05)
    return sock


class EchoStream:
    """UDP datagrams from ``src`` to an echo responder at ``dst`` every ``interval_s``.

    The sender's socket lives in the source namespace, bound to the source
    node's loopback; the responder's in the destination namespace on its
    loopback, so both directions follow the mesh's routes.  Sender, receiver
    and responder are threads of this process; with ``realtime_priority`` (a
    benchmark, as root) they run SCHED_RR, which keeps the cadence at 10 ms on a
    busy host where ``ping -i`` drifts.  Only these threads: never the caller's.
    Each reply is stamped with its arrival time; a fault's outage is the longest
    gap between replies around it (:meth:`gap`).
    """

    def __init__(
        self,
        src_netns: str,
        src_address: str,
        dst_netns: str,
        dst_address: str,
        interval_s: float = 0.01,
        port: int = ECHO_PORT,
        realtime_priority: int = 0,
    ) -> None:
        self.src_netns, self.src_address = src_netns, src_address
        self.dst_netns, self.dst_address = dst_netns, dst_address
        self.interval_s = interval_s
        self.port = port
        self.realtime_priority = realtime_priority
        self._replies: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stop_sending = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sent_at: list[float] = []
        """Send time (unix seconds) of sequence number i + 1."""
        self._socks: list[socket.socket] = []

    def start(self) -> EchoStream:
        echo = in_netns(self.dst_netns, _udp, self.dst_address, self.port)
        tx = in_netns(self.src_netns, _udp, self.src_address, 0)
        self._socks = [echo, tx]
        for target, name in ((self._echo, "echo"), (self._receive, "rx"), (self._send, "tx")):
            thread = threading.Thread(
                target=target,
                args=(echo if name == "echo" else tx,),
                name=f"x0-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _echo(self, sock: socket.socket) -> None:
        set_realtime(self.realtime_priority)
        while not self._stop.is_set():
            try:
                data, addr = sock.recvfrom(64)
                sock.sendto(data, addr)
            except TimeoutError:
                continue
            except OSError:  # no route back right now: the sender counts it lost
                continue

    def _receive(self, sock: socket.socket) -> None:
        set_realtime(self.realtime_priority)
        while not self._stop.is_set():
            try:
                data = sock.recv(64)
            except (TimeoutError, OSError):
                continue
            arrived = time.time()
            if len(data) == _PACKET.size:
                seq, _ = _PACKET.unpack(data)
                with self._lock:
                    self._replies.append((arrived, seq))

    def _send(self, sock: socket.socket) -> None:
        set_realtime(self.realtime_priority)
        target = (self.dst_address, self.port)
        due = time.monotonic()
        seq = 0
        while not self._stop_sending.is_set():
            seq += 1
            sent_at = time.time()
            with contextlib.suppress(OSError):  # unreachable for now: lost, not fatal
                sock.sendto(_PACKET.pack(seq, sent_at), target)
            self._sent_at.append(sent_at)
            due += self.interval_s
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self, drain_s: float = 1.0) -> None:
        """Stop sending, wait up to ``drain_s`` for the replies still in flight (on a
        loaded host one can take tens of ms, and ending the receiver first counted it
        lost), then stop the threads and close the sockets; idempotent."""
        self._stop_sending.set()
        for thread in self._threads:
            if thread.name == "x0-tx":
                thread.join(timeout=2)
        deadline = time.monotonic() + drain_s
        while self._threads and time.monotonic() < deadline and self._in_flight():
            time.sleep(self.interval_s)
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._threads.clear()
        for sock in self._socks:
            sock.close()
        self._socks.clear()

    def replies(self) -> list[tuple[float, int]]:
        with self._lock:
            return list(self._replies)

    def wait_replies(self, count: int, timeout_s: float = 10.0) -> None:
        """Block until ``count`` replies arrived in a row without loss (the path works)."""
        deadline = time.monotonic() + timeout_s
        while True:
            replies = self.replies()
            if len(replies) >= count:
                recent = [seq for _, seq in replies[-count:]]
                if recent[-1] - recent[0] == count - 1:
                    return
            if time.monotonic() > deadline:
                raise MeshError(
                    f"no steady echo replies from {self.dst_address} to {self.src_address} "
                    f"within {timeout_s:g} s",
                    fix="check the routes with `x0tta6bl4 mesh routes`",
                )
            time.sleep(self.interval_s)

    def gap(self, start: float, end: float) -> float:
        """The outage of a fault at ``start``: longest time without a reply until ``end``
        (unix seconds), counted from the last reply before ``start``."""
        return longest_gap([t for t, _ in self.replies()], start, end)

    def last_reply(self) -> float:
        """Arrival time of the newest reply (0 before the first)."""
        with self._lock:
            return self._replies[-1][0] if self._replies else 0.0

    def _in_flight(self) -> bool:
        """Whether a reply to one of the last few datagrams sent is still missing."""
        with self._lock:
            got = {seq for _, seq in self._replies[-8:]}
        top = len(self._sent_at)
        return any(seq not in got for seq in range(max(1, top - 3), top + 1))

    def stats(self) -> StreamStats:
        """Sent and received so far; lost = sequences without a reply (the last one,
        possibly in flight, excluded)."""
        with self._lock:
            got = {seq for _, seq in self._replies}
        top = len(self._sent_at)
        lost = [s for s in range(1, top) if s not in got]
        return StreamStats(sent=top, received=len(got), lost_sequences=lost)

    def sent_at(self, seq: int) -> float:
        """When datagram ``seq`` was sent (unix seconds)."""
        return self._sent_at[seq - 1]

    def __enter__(self) -> EchoStream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_request(ident: int, seq: int) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(header), ident, seq)


def _raw_icmp(source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.bind((source, 0))
    sock.setblocking(False)
    return sock


def reachability(
    namespaces: Mapping[str, str], addresses: Mapping[str, str], timeout_s: float = 0.5
) -> set[tuple[str, str]]:
    """Which ``(src, dst)`` pairs answer one ICMP echo within ``timeout_s``, all at once.

    One raw ICMP socket per source namespace, bound to the source's address
    (its loopback), sends an echo to every other
    node's address; replies are matched by identifier and sequence.  Used to
    tell when a mesh has converged (every pair reachable) without a process
    per ping.
    """
    nodes = list(namespaces)
    socks = {src: in_netns(namespaces[src], _raw_icmp, addresses[src]) for src in nodes}
    ident = os.getpid() & 0xFFFF
    index = {node: i for i, node in enumerate(nodes)}
    by_addr = {addresses[n]: n for n in nodes}
    reached: set[tuple[str, str]] = set()
    try:
        for src, sock in socks.items():
            for dst in nodes:
                if dst != src:
                    with contextlib.suppress(OSError):  # no route yet: unreachable
                        sock.sendto(_echo_request(ident, index[dst]), (addresses[dst], 0))
        deadline = time.monotonic() + timeout_s
        expected = len(nodes) * (len(nodes) - 1)
        while len(reached) < expected and time.monotonic() < deadline:
            ready, _, _ = select.select(
                list(socks.values()), [], [], max(0.0, deadline - time.monotonic())
            )
            for sock in ready:
                src = next(s for s, k in socks.items() if k is sock)
                while True:
                    try:
                        packet, (addr, _) = sock.recvfrom(2048)
                    except BlockingIOError:
                        break
                    ihl = (packet[0] & 0x0F) * 4
                    kind, _, _, got_ident, _ = struct.unpack("!BBHHH", packet[ihl : ihl + 8])
                    if kind == 0 and got_ident == ident and addr in by_addr:
                        reached.add((src, by_addr[addr]))
    finally:
        for sock in socks.values():
            sock.close()
    return reached
