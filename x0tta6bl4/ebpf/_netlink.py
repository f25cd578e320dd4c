"""Interfaces, XDP and TC through rtnetlink (pyroute2), in the host or a named namespace.

This is the adapter for pyroute2: its ``NetlinkError`` and ``OSError`` are
translated here into our errors and nowhere else.  A socket for a namespace is
created by a short-lived thread that enters it, so no long-lived thread or
process ever changes namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from x0tta6bl4.errors import (
    AttachConflictError,
    EbpfError,
    InterfaceDownError,
    InterfaceNotFoundError,
    KernelFeatureError,
    PrivilegeError,
)

__all__ = [
    "NETNS_DIR",
    "TC_HANDLE",
    "TC_PREF",
    "Direction",
    "Link",
    "TcFilter",
    "XdpMode",
    "clsact_add",
    "clsact_del",
    "clsact_present",
    "find_link",
    "link_names",
    "link_stats",
    "links",
    "rtnl",
    "tc_filter_add",
    "tc_filter_del",
    "tc_filters",
    "xdp_attach",
    "xdp_detach",
]

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_NETLINK_ROUTE = 0

XDP_FLAGS_UPDATE_IF_NOEXIST = 1
XDP_FLAGS_REPLACE = 16
TC_PREF = 49
"""Priority of our TC filters: low enough to run before most others; they never decide."""
TC_HANDLE = 0x0E0B
_IFF_UP = 1
_ETH_P_ALL = 0x0003


class XdpMode(StrEnum):
    """Where an XDP program runs: the NIC (HW), the driver (DRV) or the stack (SKB)."""

    AUTO = "auto"
    HW = "hw"
    DRV = "drv"
    SKB = "skb"

    @property
    def flag(self) -> int:
        return {XdpMode.HW: 8, XdpMode.DRV: 4, XdpMode.SKB: 2}[self]


_ATTACHED_MODE = {"xdp": XdpMode.DRV, "xdpgeneric": XdpMode.SKB, "xdpoffload": XdpMode.HW}


class Direction(StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"

    @property
    def parent(self) -> int:
        return 0xFFFFFFF2 if self is Direction.INGRESS else 0xFFFFFFF3


@dataclass(frozen=True)
class Link:
    """An interface as the kernel sees it now."""

    netns: str | None
    name: str
    index: int
    up: bool
    xdp_prog_id: int
    xdp_mode: XdpMode | None
    kind: str = ""
    """The driver kind from ``IFLA_INFO_KIND`` (``veth``, ``bridge``...); "" for a NIC."""

    @property
    def where(self) -> str:
        return f"{self.name} in namespace {self.netns}" if self.netns else f"{self.name}"


@dataclass(frozen=True)
class TcFilter:
    direction: Direction
    pref: int
    handle: int
    kind: str
    name: str


def _where(netns: str | None) -> str:
    return f" in network namespace {netns}" if netns else ""


def _translate(exc: NetlinkError | OSError, what: str, netns: str | None) -> Exception:
    code = exc.code if isinstance(exc, NetlinkError) else (exc.errno or 0)
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    if code in (errno.EPERM, errno.EACCES):
        return PrivilegeError(
            f"{what}{_where(netns)}: permission denied",
            fix="run as root, or grant CAP_NET_ADMIN and CAP_BPF",
        )
    if code == errno.ENODEV:
        return InterfaceNotFoundError(f"{what}{_where(netns)}: no such device", netns=netns)
    if code in (errno.EBUSY, errno.EEXIST):
        return AttachConflictError(
            f"{what}{_where(netns)}: {detail}",
            fix="detach the program that is there first (`bpftool net show`)",
            netns=netns,
        )
    return EbpfError(f"{what}{_where(netns)} failed: {detail} (errno {code})", netns=netns)


def _in_netns(netns: str, fn: Callable[[], T]) -> T:
    """``fn()`` run by a short-lived thread that entered ``netns`` first.

    ``setns`` moves only the calling thread, and a socket stays in the namespace
    it was created in.  (pyroute2's own ``netns=`` forks a helper process, which
    can deadlock in a multi-threaded process such as a Ray worker.)
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc().setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            failure.append(exc)

    thread = threading.Thread(target=body, name=f"x0-ebpf-netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _socket_in(netns: str) -> int:
    """A netlink socket fd created inside ``netns``."""
    return _in_netns(
        netns, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE).detach()
    )


def link_names(netns: str) -> list[str]:
    """Names of the interfaces in ``netns``: one ``if_nameindex`` call, no netlink decoding.

    Rescans list every namespace every few seconds; pyroute2's link dump costs
    milliseconds per namespace, this a few microseconds.
    """
    if not (NETNS_DIR / netns).exists():
        raise InterfaceNotFoundError(f"network namespace {netns} does not exist", netns=netns)
    try:
        return [name for _index, name in _in_netns(netns, socket.if_nameindex)]
    except FileNotFoundError as exc:
        raise InterfaceNotFoundError(
            f"network namespace {netns} does not exist", netns=netns
        ) from exc
    except OSError as exc:
        raise _translate(exc, "listing interfaces", netns) from exc


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


@contextmanager
def rtnl(netns: str | None = None) -> Iterator[IPRoute]:
    """An rtnetlink socket in the host namespace or inside ``netns`` (never created)."""
    if netns is not None and not (NETNS_DIR / netns).exists():
        raise InterfaceNotFoundError(
            f"network namespace {netns} does not exist",
            fix="check `ip netns list` for the namespace name",
            netns=netns,
        )
    try:
        fileno = _socket_in(netns) if netns else None
        ipr = IPRoute(fileno=fileno, ext_ack=True)
    except FileNotFoundError as exc:
        raise InterfaceNotFoundError(
            f"network namespace {netns} does not exist", netns=netns
        ) from exc
    except (NetlinkError, OSError) as exc:
        raise _translate(exc, "opening rtnetlink", netns) from exc
    try:
        yield ipr
    except NetlinkError as exc:
        raise _translate(exc, "netlink request", netns) from exc
    finally:
        ipr.close()


def _link_of(msg: Any, netns: str | None) -> Link:
    xdp = msg.get_attr("IFLA_XDP")
    prog_id, mode = 0, None
    if xdp is not None:
        attrs = dict(xdp.get("attrs", []))
        prog_id = int(attrs.get("IFLA_XDP_PROG_ID") or 0)
        mode = _ATTACHED_MODE.get(attrs.get("IFLA_XDP_ATTACHED") or "")
    return Link(
        netns=netns,
        name=msg.get_attr("IFLA_IFNAME"),
        index=msg["index"],
        up=bool(msg["flags"] & _IFF_UP),
        xdp_prog_id=prog_id,
        xdp_mode=mode,
        kind=msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "",
    )


def links(ipr: IPRoute, netns: str | None) -> list[Link]:
    return [_link_of(msg, netns) for msg in ipr.link("dump")]


def find_link(ipr: IPRoute, netns: str | None, ifname: str, *, require_up: bool = True) -> Link:
    """The interface ``ifname``; raises if it is missing or (with ``require_up``) down."""
    indexes = ipr.link_lookup(ifname=ifname)
    if not indexes:
        raise InterfaceNotFoundError(
            f"no interface {ifname}{_where(netns)}",
            fix=f"check `{'ip -n ' + netns if netns else 'ip'} link show` for its name",
            interface=ifname,
            netns=netns,
        )
    link = _link_of(ipr.link("get", index=indexes[0])[0], netns)
    if require_up and not link.up:
        raise InterfaceDownError(
            f"interface {link.where} is down",
            fix=f"bring it up: `{'ip -n ' + netns if netns else 'ip'} link set {ifname} up`",
            interface=ifname,
            netns=netns,
        )
    return link


def xdp_attach(ipr: IPRoute, link: Link, fd: int, mode: XdpMode) -> None:
    """Attach in exactly ``mode``; fails if any XDP program is there already.

    Raises :class:`KernelFeatureError` when the device or kernel does not offer
    the mode, so the caller can fall back to the next one.
    """
    flags = mode.flag | XDP_FLAGS_UPDATE_IF_NOEXIST
    try:
        ipr.link(
            "set",
            index=link.index,
            xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]},
        )
    except NetlinkError as exc:
        if exc.code in (errno.EOPNOTSUPP, errno.EINVAL, 524):  # 524: kernel ENOTSUPP
            raise KernelFeatureError(
                f"XDP {mode.value} mode on {link.where}: {exc.args[1]}",
                fix="the next mode is tried; force one with mode=drv or mode=skb",
                interface=link.name,
                mode=mode.value,
            ) from exc
        raise _translate(exc, f"attaching XDP ({mode.value}) to {link.name}", link.netns) from exc


def xdp_detach(ipr: IPRoute, link: Link, mode: XdpMode, expected_fd: int) -> bool:
    """Remove the XDP program only if it is still the one behind ``expected_fd``.

    Returns whether something was removed; a different program stays in place.
    """
    flags = mode.flag | XDP_FLAGS_REPLACE
    try:
        ipr.link(
            "set",
            index=link.index,
            xdp={
                "attrs": [
                    ("IFLA_XDP_FD", -1),
                    ("IFLA_XDP_FLAGS", flags),
                    ("IFLA_XDP_EXPECTED_FD", expected_fd),
                ]
            },
        )
    except NetlinkError as exc:
        if exc.code in (errno.EEXIST, errno.ENODEV):  # replaced by someone, or gone
            return False
        raise _translate(exc, f"detaching XDP from {link.name}", link.netns) from exc
    return True


def clsact_present(ipr: IPRoute, index: int) -> bool:
    return any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=index))


def clsact_add(ipr: IPRoute, link: Link) -> bool:
    """Add the clsact qdisc; returns False when one was there already (not ours)."""
    try:
        ipr.tc("add", "clsact", link.index)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return False
        raise _translate(exc, f"adding clsact to {link.name}", link.netns) from exc
    return True


def clsact_del(ipr: IPRoute, link: Link) -> None:
    try:
        ipr.tc("del", "clsact", link.index)
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
            raise _translate(exc, f"removing clsact from {link.name}", link.netns) from exc


def tc_filters(ipr: IPRoute, index: int, direction: Direction) -> list[TcFilter]:
    """The filters on one clsact hook (empty when there is no clsact)."""
    result = []
    try:
        msgs = ipr.get_filters(index=index, parent=direction.parent)
    except NetlinkError as exc:
        if exc.code in (errno.EINVAL, errno.ENOENT):
            return []
        raise
    for msg in msgs:
        if not msg["handle"]:  # the per-priority header the kernel sends first
            continue
        options = msg.get_attr("TCA_OPTIONS")
        name = ""
        if options is not None:
            name = dict(options.get("attrs", [])).get("TCA_BPF_NAME") or ""
        result.append(
            TcFilter(
                direction=direction,
                pref=msg["info"] >> 16,
                handle=msg["handle"],
                kind=msg.get_attr("TCA_KIND") or "",
                name=name,
            )
        )
    return result


def tc_filter_add(ipr: IPRoute, link: Link, direction: Direction, fd: int, name: str) -> None:
    try:
        ipr.tc(
            "add-filter",
            "bpf",
            link.index,
            handle=TC_HANDLE,
            fd=fd,
            name=name,
            parent=direction.parent,
            prio=TC_PREF,
            protocol=_ETH_P_ALL,
            direct_action=True,
        )
    except NetlinkError as exc:
        raise _translate(
            exc, f"adding TC {direction.value} filter to {link.name}", link.netns
        ) from exc


def tc_filter_del(ipr: IPRoute, link: Link, direction: Direction) -> bool:
    """Delete our filter (pref and handle); returns whether one was there."""
    try:
        ipr.tc(
            "del-filter",
            "bpf",
            link.index,
            handle=TC_HANDLE,
            parent=direction.parent,
            prio=TC_PREF,
            protocol=_ETH_P_ALL,
        )
    except NetlinkError as exc:
        if exc.code in (errno.ENOENT, errno.EINVAL, errno.ENODEV):
            return False
        raise _translate(
            exc, f"deleting TC {direction.value} filter from {link.name}", link.netns
        ) from exc
    return True


def link_stats(ipr: IPRoute, index: int) -> dict[str, int]:
    """The kernel's own counters (``IFLA_STATS64``, what ``/sys/class/net/*/statistics`` shows)."""
    msg = ipr.link("get", index=index)[0]
    stats = msg.get_attr("IFLA_STATS64") or {}
    return {key: int(value) for key, value in dict(stats).items() if isinstance(value, int)}
