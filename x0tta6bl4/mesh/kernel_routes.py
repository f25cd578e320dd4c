"""Kernel routes of one mesh node, under our own route protocol.

Every route x0tta6bl4 installs carries protocol number :data:`ROUTE_PROTO`
(211; unassigned in iproute2's ``rt_protos``), so ``ip route show proto 211``
lists exactly ours and removal never touches a route of another protocol.
A route goes to a node's loopback /32 through the neighbour's link address
on the link's interface, with the node's own loopback as preferred source, at
metric :data:`PRIMARY_METRIC`; where the destination has a loop-free
alternate, a second route through it waits at :data:`BACKUP_METRIC`::

    10.255.0.5 via 10.128.0.17 dev x0-n3 proto 211 src 10.255.0.1 metric 10
    10.255.0.5 via 10.128.0.9 dev x0-n1 proto 211 src 10.255.0.1 metric 20

The kernel removes the routes of an interface set down and, with
``ignore_routes_with_linkdown``, skips those of an interface without carrier,
so it falls over to the backup the instant a link dies: the repair needs no
write, which on a busy host can wait tens of milliseconds for the RTNL lock.

:class:`KernelRouteSink` is the :class:`~x0tta6bl4.mesh.ports.RouteSink` the
MeshNode actor hands its logic: ``apply`` records the wanted state and queues
the netlink work on the namespace's worker thread (it never blocks the event
loop); :meth:`KernelRouteSink.resync` repairs any drift (a failed write, a
route the kernel dropped when a link went administratively down).
``installed`` starts from what the kernel holds, so a restarted actor adopts
its predecessor's routes without a flush.  Route writes and dumps go through the
lean client in :mod:`~x0tta6bl4.mesh.rtnetlink` (batched, tens of microseconds a
route); interface lookups and the foreign-route guard use pyroute2.
Kernel errors are translated to :class:`RouteError`, :class:`InterfaceError` or
:class:`PrivilegeError` here.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from x0tta6bl4 import loggers
from x0tta6bl4.errors import InterfaceError, MeshError, PrivilegeError, RouteError, X0Error
from x0tta6bl4.mesh.nsutil import NetnsWorker
from x0tta6bl4.mesh.ports import Route
from x0tta6bl4.mesh.rtnetlink import RouteWrite, route_socket

__all__ = [
    "BACKUP_METRIC",
    "MAIN_TABLE",
    "PRIMARY_METRIC",
    "ROUTE_PROTO",
    "KernelRouteSink",
    "KernelRoutes",
    "NextHop",
    "Write",
]

ROUTE_PROTO = 211
"""Our route protocol number (``ip route show proto 211``); see docs/mesh.md."""
MAIN_TABLE = 254
PRIMARY_METRIC = 10
BACKUP_METRIC = 20
"""Metrics of a destination's two routes; not 0, which a delete reads as "any"."""

log = loggers.mesh


@dataclass(frozen=True)
class NextHop:
    """How to reach a direct neighbour: our interface and its address on the link."""

    ifname: str
    gateway: str


_Op = tuple[str, str, int, NextHop | None]
"""One queued write: destination node, its address, metric, next hop (None: delete)."""
Write = tuple[str, int, NextHop | None, str | None]
"""One write for :meth:`KernelRoutes.write`: address, metric, next hop (None: delete),
preferred source."""


def _translate(code: int, what: str, **context: Any) -> MeshError | PrivilegeError:
    text = f"{what}: {os.strerror(code)} (errno {code})"
    if code in (errno.EPERM, errno.EACCES):
        return PrivilegeError(text, **context)
    if code in (errno.ENODEV, errno.ENETDOWN):
        return InterfaceError(text, **context)
    return RouteError(text, fix="check `ip route show proto 211` and the links", **context)


class KernelRoutes:
    """Blocking reads and writes of our routes; every method runs on the worker's thread.

    Args:
        proto: route protocol number of ours.
        table: routing table (main by default).
        guard_foreign: refuse to replace a route to the same prefix owned by another
            protocol (the host backend: routes on a real machine are not all ours).
    """

    def __init__(
        self, proto: int = ROUTE_PROTO, table: int = MAIN_TABLE, guard_foreign: bool = False
    ) -> None:
        self.proto = proto
        self.table = table
        self.guard_foreign = guard_foreign
        self._ifindex: dict[str, int] = {}

    def ifindex(self, ipr: IPRoute, ifname: str) -> int:
        if ifname not in self._ifindex:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                raise InterfaceError(f"interface {ifname} does not exist", ifname=ifname)
            self._ifindex[ifname] = found[0]
        return self._ifindex[ifname]

    def read(self, ipr: IPRoute) -> dict[tuple[str, int], tuple[str, int]]:
        """Our /32 routes: (destination address, metric) -> (gateway, interface index)."""
        try:
            entries = route_socket().dump(self.proto, self.table)
        except OSError as exc:
            raise _translate(exc.errno or errno.EIO, "reading routes") from exc
        return {
            (e.dst, e.metric): (e.gateway, e.oif)
            for e in entries
            if e.dst_len == 32 and e.dst and e.gateway and e.oif
        }

    def replace(
        self,
        ipr: IPRoute,
        dst: str,
        hop: NextHop,
        source: str | None = None,
        metric: int = PRIMARY_METRIC,
    ) -> None:
        """Install or move our route to ``dst`` at ``metric`` through ``hop``."""
        (error,) = self.write(ipr, [(dst, metric, hop, source)])
        if error is not None:
            raise error

    def delete(self, ipr: IPRoute, dst: str, metric: int = PRIMARY_METRIC) -> bool:
        """Remove our route to ``dst`` at ``metric`` (0: the lowest); False when none."""
        try:
            (code,) = route_socket().write([RouteWrite(dst, metric)], self.proto, self.table)
        except OSError as exc:
            code = exc.errno or errno.EIO
        if code == errno.ESRCH:
            return False
        if code:
            raise _translate(code, f"removing route to {dst}", dst=dst)
        return True

    def write(self, ipr: IPRoute, writes: Sequence[Write]) -> list[X0Error | None]:
        """Apply ``writes`` in order, in one netlink batch; per write None (done) or its
        error.  Removing a route that is already gone counts as done."""
        errors: list[X0Error | None] = [None] * len(writes)
        batch: list[tuple[int, RouteWrite]] = []
        for i, (dst, metric, hop, source) in enumerate(writes):
            try:
                if hop is None:
                    batch.append((i, RouteWrite(dst, metric)))
                    continue
                if self.guard_foreign:
                    self._refuse_foreign(ipr, dst)
                oif = self.ifindex(ipr, hop.ifname)
                batch.append((i, RouteWrite(dst, metric, hop.gateway, oif, source)))
            except MeshError as exc:
                errors[i] = exc
        try:
            codes = route_socket().write([w for _, w in batch], self.proto, self.table)
        except OSError as exc:
            codes = [exc.errno or errno.EIO] * len(batch)
        for (i, w), code in zip(batch, codes, strict=True):
            if not code or (code == errno.ESRCH and w.gateway is None):
                continue
            if w.gateway is None:
                errors[i] = _translate(code, f"removing route to {w.dst}", dst=w.dst)
                continue
            # The interface may have been made again under a new index (the kernel then
            # answers ENODEV or ENETUNREACH): look it up afresh for the next write.
            self._ifindex = {n: x for n, x in self._ifindex.items() if x != w.oif}
            errors[i] = _translate(code, f"installing {w.dst} via {w.gateway}", dst=w.dst)
        return errors

    def flush(self, ipr: IPRoute) -> int:
        """Remove every route of our protocol in the table; returns how many."""
        return sum(self.delete(ipr, dst, metric) for dst, metric in self.read(ipr))

    def _refuse_foreign(self, ipr: IPRoute, dst: str) -> None:
        try:
            msgs = ipr.get_routes(family=2, table=self.table, dst=dst, dst_len=32)
        except NetlinkError as exc:
            raise _translate(exc.code, f"reading routes to {dst}") from exc
        for msg in msgs:
            if msg["dst_len"] == 32 and msg.get("proto") != self.proto and msg.get("dst") == dst:
                raise RouteError(
                    f"route to {dst}/32 belongs to protocol {msg.get('proto')}, not to us",
                    fix="remove that route or keep the mesh's loopbacks out of it",
                    dst=dst,
                )


class KernelRouteSink:
    """A :class:`RouteSink` over the kernel of one namespace (None: the host's).

    Args:
        worker: the namespace's netlink worker thread.
        nexthops: neighbour -> interface and link address of that neighbour.
        destinations: node -> the address routes to it target (its loopback).
        source: preferred source address of our routes (this node's loopback).
        routes: the :class:`KernelRoutes` to use (its protocol, table, guard).
    """

    def __init__(
        self,
        worker: NetnsWorker,
        nexthops: Mapping[str, NextHop],
        destinations: Mapping[str, str],
        source: str | None = None,
        routes: KernelRoutes | None = None,
    ) -> None:
        self.worker = worker
        self.nexthops = dict(nexthops)
        self.destinations = dict(destinations)
        self.source = source
        self.kernel = routes or KernelRoutes()
        self._lock = threading.Lock()
        self._wanted: dict[str, Route] = {}
        self._by_addr = {addr: node for node, addr in self.destinations.items()}
        self._by_gateway = {hop.gateway: n for n, hop in self.nexthops.items()}
        self.errors = 0
        self.last_error: str | None = None
        self._failing: set[str] = set()
        self._suspect = True
        """Whether the kernel may differ from the wanted state: set by our own writes,
        failed writes and :meth:`suspect`; cleared by a comparison."""

    # --- RouteSink -----------------------------------------------------------------

    def load(self, timeout_s: float = 10.0) -> dict[str, Route]:
        """Read our routes from the kernel as the starting state (blocking; call once).

        A backup without its primary (the kernel dropped the primary with its link while
        no actor ran) is what forwards now: it is adopted as the primary, and the next
        resync moves it to the primary's metric."""
        found = self.worker.call(self.kernel.read, timeout_s)
        index_names = self.worker.call(_ifnames, timeout_s)
        hops: dict[str, dict[int, str]] = {}
        stray = []
        for (addr, metric), (gateway, oif) in found.items():
            dest, hop = self._by_addr.get(addr), self._by_gateway.get(gateway)
            if (
                dest is not None
                and hop is not None
                and index_names.get(oif) == self.nexthops[hop].ifname
                and metric in (PRIMARY_METRIC, BACKUP_METRIC)
            ):
                hops.setdefault(dest, {})[metric] = hop
            else:
                stray.append((addr, metric))
        routes = {}
        for dest, by_metric in hops.items():
            if PRIMARY_METRIC in by_metric:
                primary, backup = by_metric[PRIMARY_METRIC], by_metric.get(BACKUP_METRIC)
                routes[dest] = Route(dest, primary, 0.0, backup)
            else:
                routes[dest] = Route(dest, by_metric[BACKUP_METRIC], 0.0)
                self._suspect = True
        with self._lock:
            self._wanted = dict(routes)
        if stray:
            log.info("stray_routes_removed", count=len(stray))
            for addr, metric in stray:
                self.worker.submit(partial(self.kernel.delete, dst=addr, metric=metric))
        return routes

    def apply(self, install: Sequence[Route], remove: Sequence[str]) -> None:
        """Record the change and queue it on the worker thread (never blocks)."""
        for route in install:
            unknown = [h for h in (route.next_hop, route.backup) if h and h not in self.nexthops]
            if unknown or route.dest not in self.destinations:
                raise RouteError(
                    f"no link to {unknown[0] if unknown else route.next_hop} "
                    f"or no address for {route.dest}",
                    dest=route.dest,
                    next_hop=route.next_hop,
                )
        ops: list[_Op] = []
        with self._lock:
            for route in install:
                old = self._wanted.get(route.dest)
                ops += self._diff(route.dest, old, route)
                self._wanted[route.dest] = route
            for dest in remove:
                if dest not in self.destinations:
                    continue
                old = self._wanted.pop(dest, None)
                metrics = self._entries(old) if old else (PRIMARY_METRIC, BACKUP_METRIC)
                ops += [(dest, self.destinations[dest], metric, None) for metric in metrics]
            if ops:
                self._suspect = True
        if ops:
            ops.sort(key=_urgency)
            self.worker.submit(lambda ipr: self._write(ipr, ops))

    def installed(self) -> Mapping[str, Route]:
        with self._lock:
            return dict(self._wanted)

    def _entries(self, route: Route | None) -> dict[int, NextHop]:
        """The kernel routes ``route`` stands for: metric -> next hop."""
        if route is None:
            return {}
        entries = {PRIMARY_METRIC: self.nexthops[route.next_hop]}
        if route.backup and route.backup != route.next_hop:
            entries[BACKUP_METRIC] = self.nexthops[route.backup]
        return entries

    def _diff(self, dest: str, old: Route | None, new: Route | None) -> list[_Op]:
        """Writes that turn ``old``'s kernel routes into ``new``'s: the primary first, so
        the destination is never without a route, then the backup, then deletions."""
        addr, before, after = self.destinations[dest], self._entries(old), self._entries(new)
        ops: list[_Op] = [(dest, addr, m, hop) for m, hop in after.items() if before.get(m) != hop]
        return ops + [(dest, addr, metric, None) for metric in before if metric not in after]

    # --- worker side ---------------------------------------------------------------------

    def _write(self, ipr: IPRoute, ops: list[_Op]) -> None:
        writes = [(addr, metric, hop, self.source) for _, addr, metric, hop in ops]
        for (dest, *_), exc in zip(ops, self.kernel.write(ipr, writes), strict=True):
            if exc is None:
                self._failing.discard(dest)
            else:
                self.errors += 1
                self.last_error = str(exc)
                self._suspect = True
                if dest not in self._failing:
                    log.warning("route_write_failed", dest=dest, error=exc.message)
                self._failing.add(dest)

    def suspect(self) -> None:
        """Something outside our writes may have changed the routes (a link went down,
        and the kernel dropped the routes through it): compare at the next resync."""
        self._suspect = True

    @property
    def suspected(self) -> bool:
        """Whether a resync now could find drift (see :meth:`resync`)."""
        return self._suspect

    def resync(self) -> Future[int]:
        """Make the kernel match what the logic wants; the future gives the fixes made.

        A route dump costs milliseconds of pyroute2 parsing, so callers compare when
        :attr:`suspected` and only now and then otherwise (an audit)."""
        return self.worker.submit(self._resync)

    def _resync(self, ipr: IPRoute) -> int:
        with self._lock:
            self._suspect = False
            wanted = {
                (dest, self.destinations[dest], metric): hop
                for dest, route in self._wanted.items()
                for metric, hop in self._entries(route).items()
            }
        have = self.kernel.read(ipr)
        ops: list[_Op] = [
            (dest, addr, metric, hop)
            for (dest, addr, metric), hop in wanted.items()
            if (current := have.get((addr, metric))) is None or current[0] != hop.gateway
        ]
        keep = {(addr, metric) for _, addr, metric in wanted}
        ops += [
            (self._by_addr.get(addr, addr), addr, metric, None)
            for addr, metric in have
            if (addr, metric) not in keep
        ]
        self._write(ipr, ops)
        return len(ops)

    def flush(self, timeout_s: float = 10.0) -> int:
        """Remove every route of ours in this namespace (blocking; teardown only)."""
        with self._lock:
            self._wanted.clear()
        return self.worker.call(self.kernel.flush, timeout_s)


def _urgency(op: _Op) -> int:
    """Write order within a batch: the primaries traffic uses now, then the rest (backups,
    removals).  Each write can wait milliseconds for the kernel's RTNL lock on a busy
    host, and a repair's primaries should not queue behind backups."""
    _, _, metric, hop = op
    return 0 if metric == PRIMARY_METRIC and hop is not None else 1


def _ifnames(ipr: IPRoute) -> dict[int, str]:
    return {link["index"]: link.get("ifname") for link in ipr.get_links()}
