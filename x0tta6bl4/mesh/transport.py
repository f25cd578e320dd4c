"""UDP over each link, and carrier events from netlink, on an asyncio loop.

:class:`UdpTransport` opens one datagram endpoint per link: a UDP socket
created inside the node's namespace (by a short-lived thread, see
:mod:`~x0tta6bl4.mesh.nsutil`), bound to the link's address and port and to
the link's interface (``SO_BINDTODEVICE``), marked CS6 (network control).
``send`` hands the datagram to the endpoint and returns: asyncio buffers when
the socket is full, so it never blocks.  Datagrams whose source is not the
neighbour's link address are dropped and counted before the logic sees them.

:class:`LinkWatcher` listens on a netlink socket of the namespace for
``RTM_NEWLINK`` and reports carrier changes (``IFF_UP`` and ``IFF_LOWER_UP``)
of the mesh interfaces, so a pulled cable repairs routes at once instead of
after ``k`` missed hellos.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from x0tta6bl4 import loggers
from x0tta6bl4.errors import InterfaceError, MeshError, PrivilegeError
from x0tta6bl4.mesh.nsutil import in_netns

__all__ = ["DEFAULT_PORT", "LinkSocket", "LinkWatcher", "TransportCounters", "UdpTransport"]

log = loggers.mesh

DEFAULT_PORT = 6211
_IFF_UP, _IFF_LOWER_UP = 0x1, 0x10000
_RTMGRP_LINK = 0x1
_TOS_CS6 = 0xC0


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


def _udp_socket(link: LinkSocket, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, link.ifname.encode())
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _TOS_CS6)
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
        if addr[0] != self.peer_address:
            self.owner.counters.foreign_source += 1
            return
        self.owner.counters.received += 1
        try:
            self.owner.on_receive(self.neighbor, data)
        except Exception:
            log.exception("receive_handler_failed", neighbor=self.neighbor)

    def error_received(self, exc: Exception) -> None:
        # ENETUNREACH/ECONNREFUSED while a link is down: the hellos say the rest.
        self.owner.counters.send_errors += 1


class UdpTransport:
    """The :class:`~x0tta6bl4.mesh.ports.Transport` of one node over real UDP.

    Args:
        netns: the node's namespace (None: the host's).
        links: neighbour -> where that link's socket binds.
        on_receive: called with ``(neighbor, payload)`` for every datagram.
        port: UDP port of the mesh on every link.
    """

    def __init__(
        self,
        netns: str | None,
        links: Mapping[str, LinkSocket],
        on_receive: Callable[[str, bytes], None],
        port: int = DEFAULT_PORT,
    ) -> None:
        self.netns = netns
        self.links = dict(links)
        self.on_receive = on_receive
        self.port = port
        self.counters = TransportCounters()
        self._endpoints: dict[str, asyncio.DatagramTransport] = {}

    async def start(self) -> None:
        """Open every link's socket in the namespace and attach it to the running loop."""
        loop = asyncio.get_running_loop()
        for neighbor, link in self.links.items():
            sock = await asyncio.to_thread(self._make_socket, link)
            transport, _ = await loop.create_datagram_endpoint(
                partial(_LinkProtocol, self, neighbor, link.peer_address), sock=sock
            )
            self._endpoints[neighbor] = transport

    def _make_socket(self, link: LinkSocket) -> socket.socket:
        if self.netns is None:
            return _udp_socket(link, self.port)
        return in_netns(self.netns, _udp_socket, link, self.port)

    def send(self, neighbor: str, payload: bytes) -> None:
        endpoint = self._endpoints.get(neighbor)
        if endpoint is None or endpoint.is_closing():
            raise MeshError(f"no open link socket to {neighbor}", neighbor=neighbor)
        endpoint.sendto(payload, (self.links[neighbor].peer_address, self.port))
        self.counters.sent += 1

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()


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
        self._marshal = MarshalRtnl()
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
            for msg in self._marshal.parse(data):
                if msg.get("event") != "RTM_NEWLINK":
                    continue
                ifname = msg.get("ifname")
                if ifname not in self.ifnames:
                    continue
                flags = msg["flags"]
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
