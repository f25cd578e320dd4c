"""UDP over each link, and carrier events from netlink, on an asyncio loop.

:class:`UdpTransport` opens two UDP sockets per link, created inside the
node's namespace (by a short-lived thread, see :mod:`~x0tta6bl4.mesh.nsutil`),
bound to the link's address and to the link's interface (``SO_BINDTODEVICE``),
marked CS6 (network control):

* hellos on ``port``, not watched by the event loop: the owner calls
  :meth:`UdpTransport.poll` right before each tick, which hands over every
  queued hello with the time the kernel received it (``SO_TIMESTAMPNS``), so
  RTT and miss counting stay exact.  A node process then wakes once per probe
  interval instead of once per hello (on a busy VM a wakeup of an asyncio loop
  costs more CPU than handling the hello);
* LSAs (anything that is not a hello) on ``port + 1``: an asyncio datagram
  endpoint, handled the moment they arrive, so floods never wait for a tick.

``send`` picks the socket by the datagram's type and never blocks (asyncio
buffers LSAs when the socket is full; a hello that does not fit is dropped and
counted, the next one follows a probe interval later).  Datagrams whose source
is not the neighbour's link address are dropped and counted before the logic
sees them.

:class:`LinkWatcher` listens on a netlink socket of the namespace for
``RTM_NEWLINK`` and reports carrier changes (``IFF_UP`` and ``IFF_LOWER_UP``)
of the mesh interfaces, so a pulled cable repairs routes at once instead of
after ``k`` missed hellos.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from x0tta6bl4 import loggers
from x0tta6bl4.errors import ConfigError, InterfaceError, MeshError, PrivilegeError
from x0tta6bl4.mesh.nsutil import in_netns
from x0tta6bl4.mesh.rtnetlink import RTM_NEWLINK, decode_link, messages
from x0tta6bl4.mesh.wire import is_hello

__all__ = [
    "DEFAULT_PORT",
    "LinkSocket",
    "LinkWatcher",
    "Receiver",
    "TransportCounters",
    "UdpTransport",
]

log = loggers.mesh

DEFAULT_PORT = 6211
_IFF_UP, _IFF_LOWER_UP = 0x1, 0x10000
_RTMGRP_LINK = 0x1
_TOS_CS6 = 0xC0
_SO_TIMESTAMPNS = 35  # Linux; the socket module does not name it
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)
_MAX_DATAGRAM = 65535

Receiver = Callable[[str, bytes, float | None], None]
"""``(neighbor, payload, arrived)``: ``arrived`` is when the kernel received the datagram,
on the monotonic clock, or None for "now"."""


@dataclass(frozen=True)
class LinkSocket:
    """Where one link's socket binds: the interface, our address, the neighbour's."""

    ifname: str
    address: str
    peer_address: str


@dataclass
class TransportCounters:
    sent: int = 0
    received: int = 0
    send_errors: int = 0
    foreign_source: int = 0
    """Datagrams whose source was not the neighbour's link address (dropped)."""


def _udp_socket(link: LinkSocket, port: int, timestamps: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, link.ifname.encode())
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _TOS_CS6)
        if timestamps:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        sock.bind((link.address, port))
        sock.setblocking(False)
    except PermissionError as exc:
        sock.close()
        raise PrivilegeError(f"binding a UDP socket to {link.ifname}") from exc
    except OSError as exc:
        sock.close()
        raise InterfaceError(
            f"cannot bind UDP {link.address}:{port} on {link.ifname}: {exc.strerror}",
            ifname=link.ifname,
        ) from exc
    return sock


class _LinkProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport, neighbor: str, peer_address: str) -> None:
        self.owner = owner
        self.neighbor = neighbor
        self.peer_address = peer_address

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.owner.deliver(self.neighbor, self.peer_address, addr[0], data, None)

    def error_received(self, exc: Exception) -> None:
        # ENETUNREACH/ECONNREFUSED while a link is down: the hellos say the rest.
        self.owner.counters.send_errors += 1


class UdpTransport:
    """The :class:`~x0tta6bl4.mesh.ports.Transport` of one node over real UDP.

    Args:
        netns: the node's namespace (None: the host's).
        links: neighbour -> where that link's sockets bind.
        on_receive: called with ``(neighbor, payload, arrived)`` for every datagram
            (see :data:`Receiver`).
        port: UDP port of hellos on every link; LSAs use the next one.
    """

    def __init__(
        self,
        netns: str | None,
        links: Mapping[str, LinkSocket],
        on_receive: Receiver,
        port: int = DEFAULT_PORT,
    ) -> None:
        if not 0 < port < 65535:
            raise ConfigError(
                f"mesh.udp_port={port}: hellos use it and LSAs the next port",
                fix="set mesh.udp_port between 1 and 65534",
            )
        self.netns = netns
        self.links = dict(links)
        self.on_receive = on_receive
        self.port = port
        self.lsa_port = port + 1
        self.counters = TransportCounters()
        self._hellos: dict[str, socket.socket] = {}
        self._endpoints: dict[str, asyncio.DatagramTransport] = {}
        self._last_poll = -math.inf

    async def start(self) -> None:
        """Open every link's sockets in the namespace; the LSA ones join the running loop."""
        loop = asyncio.get_running_loop()
        for neighbor, link in self.links.items():
            self._hellos[neighbor] = await asyncio.to_thread(self._make_socket, link, self.port)
            sock = await asyncio.to_thread(self._make_socket, link, self.lsa_port)
            transport, _ = await loop.create_datagram_endpoint(
                partial(_LinkProtocol, self, neighbor, link.peer_address), sock=sock
            )
            self._endpoints[neighbor] = transport

    def _make_socket(self, link: LinkSocket, port: int) -> socket.socket:
        timestamps = port == self.port
        if self.netns is None:
            return _udp_socket(link, port, timestamps)
        return in_netns(self.netns, _udp_socket, link, port, timestamps)

    def send(self, neighbor: str, payload: bytes) -> None:
        link = self.links.get(neighbor)
        if is_hello(payload):
            sock = self._hellos.get(neighbor)
            if sock is None or link is None:
                raise MeshError(f"no open link socket to {neighbor}", neighbor=neighbor)
            try:
                sock.sendto(payload, (link.peer_address, self.port))
            except OSError:  # full, or the link is down (ENETUNREACH): the hellos tell
                self.counters.send_errors += 1
                return
        else:
            endpoint = self._endpoints.get(neighbor)
            if endpoint is None or link is None or endpoint.is_closing():
                raise MeshError(f"no open link socket to {neighbor}", neighbor=neighbor)
            endpoint.sendto(payload, (link.peer_address, self.lsa_port))
        self.counters.sent += 1

    def poll(self) -> int:
        """Hand every hello queued on the links to ``on_receive`` with its arrival time
        (never blocks); returns how many.  Call it right before each tick.

        Arrival times are kept between the previous poll and now (every hello read now
        came after the previous poll drained its socket), so a step of the wall clock
        between the kernel's stamp and this read cannot age a hello by seconds."""
        now = time.monotonic()
        offset = now - time.time()
        since, self._last_poll = self._last_poll, now
        counters = self.counters
        handled = 0
        for neighbor, sock in self._hellos.items():
            peer = self.links[neighbor].peer_address
            while True:
                try:
                    data, ancillary, _, addr = sock.recvmsg(_MAX_DATAGRAM, _ANCILLARY_BYTES)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error of an earlier send (the link was down)
                    counters.send_errors += 1
                    continue
                arrived = None
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        sec, nsec = _TIMESPEC.unpack_from(value)
                        arrived = min(max(sec + nsec * 1e-9 + offset, since), now)
                handled += self.deliver(neighbor, peer, addr[0], data, arrived)
        return handled

    def deliver(
        self, neighbor: str, peer: str, source: str, data: bytes, arrived: float | None
    ) -> bool:
        """Hand a datagram from ``source`` on the link to ``neighbor`` to ``on_receive``,
        unless it did not come from the neighbour's address ``peer`` (counted, dropped)."""
        if source != peer:
            self.counters.foreign_source += 1
            return False
        self.counters.received += 1
        try:
            self.on_receive(neighbor, data, arrived)
        except Exception:
            log.exception("receive_handler_failed", neighbor=neighbor)
        return True

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()
        for sock in self._hellos.values():
            sock.close()
        self._hellos.clear()


def _netlink_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.bind((0, _RTMGRP_LINK))
    sock.setblocking(False)
    return sock


class LinkWatcher:
    """Reports carrier changes of the named interfaces as ``on_change(ifname, up)``."""

    def __init__(
        self, netns: str | None, ifnames: set[str], on_change: Callable[[str, bool], None]
    ) -> None:
        self.netns = netns
        self.ifnames = set(ifnames)
        self.on_change = on_change
        self._state: dict[str, bool] = {}
        self._sock: socket.socket | None = None
        self.events = 0

    def _make_socket(self) -> socket.socket:
        if self.netns is None:
            return _netlink_socket()
        return in_netns(self.netns, _netlink_socket)

    async def start(self) -> None:
        """Open the netlink socket in the namespace and watch it on the running loop."""
        self._sock = await asyncio.to_thread(self._make_socket)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)

    def _readable(self) -> None:
        if self._sock is None:
            return
        while True:
            try:
                data = self._sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:  # ENOBUFS: events were lost; the hellos still catch up
                log.warning("netlink_overrun", error=str(exc))
                return
            for kind, _flags, _seq, payload in messages(data):
                if kind != RTM_NEWLINK:
                    continue
                ifname, flags = decode_link(payload)
                if ifname not in self.ifnames:
                    continue
                up = bool(flags & _IFF_UP) and bool(flags & _IFF_LOWER_UP)
                if self._state.get(ifname) is not up:
                    self._state[ifname] = up
                    self.events += 1
                    try:
                        self.on_change(ifname, up)
                    except Exception:
                        log.exception("link_event_handler_failed", ifname=ifname)

    def close(self) -> None:
        if self._sock is not None:
            # Without a running loop nothing is registered with it any more.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
