"""One live mesh node: :class:`MeshNodeLogic` wired to real UDP, netlink and a clock.

:class:`NodeService` is what a MeshNode actor runs (and what a test can run
on its own event loop): it opens the link sockets and the carrier watcher in
the node's namespace, reads the routes a previous incarnation left in the
kernel so the logic adopts them (non-stop forwarding), then drives the logic
with a tick every ``mesh.probe_interval_s`` and repairs kernel drift every
``mesh.resync_interval_s``.  The loops never die: each pass catches, logs and
carries on, and every action is idempotent, so a pass that failed half-way is
simply repeated.  No Ray here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import MeshError
from x0tta6bl4.mesh.addressing import AddressPlan
from x0tta6bl4.mesh.kernel_routes import KernelRoutes, KernelRouteSink, NextHop
from x0tta6bl4.mesh.node import MeshNodeLogic, NodeSnapshot
from x0tta6bl4.mesh.nsutil import NetnsWorker, set_realtime, set_realtime_process
from x0tta6bl4.mesh.security import SecureCodec
from x0tta6bl4.mesh.topology import Topology
from x0tta6bl4.mesh.transport import LinkSocket, LinkWatcher, UdpTransport

__all__ = ["MonotonicClock", "NodeService", "NodeSpec", "node_specs"]

SLOW_TICK_FACTOR = 3.0
"""A tick later than this many intervals is logged as slow (the host is overloaded)."""
AUDIT_EVERY = 10
"""With nothing that could have changed the kernel's routes, they are still compared
with ours every this many resync intervals (someone else may have touched them)."""


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()


@dataclass(frozen=True)
class NodeSpec:
    """Everything one node needs to run, derived from the topology and addressing plan.

    ``netns`` None means the host's own namespace (the host backend).
    """

    name: str
    netns: str | None
    loopback: str
    links: dict[str, LinkSocket]
    """Neighbour -> the link's interface, our address and the neighbour's."""
    costs: dict[str, float]
    destinations: dict[str, str]
    """Every node -> the address routes to it target (its loopback)."""
    guard_foreign: bool = False
    """Refuse to replace routes of other protocols (real hosts)."""
    ray_node_id: str | None = None
    """The Ray node that owns the interfaces; None: wherever the caller runs."""


def node_specs(topology: Topology, plan: AddressPlan) -> dict[str, NodeSpec]:
    """A :class:`NodeSpec` per node of a netns mesh."""
    specs = {}
    for name in topology.names:
        ends = plan.ends(name)
        specs[name] = NodeSpec(
            name=name,
            netns=plan.namespaces[name],
            loopback=plan.loopbacks[name],
            links={
                peer: LinkSocket(end.ifname, end.address, end.peer_address)
                for peer, end in ends.items()
            },
            costs={peer: topology.link(name, peer).cost for peer in ends},
            destinations=dict(plan.loopbacks),
        )
    return specs


@dataclass
class ServiceStats:
    ticks: int = 0
    slow_ticks: int = 0
    last_tick_s: float = 0.0
    max_tick_s: float = 0.0
    resync_fixes: int = 0
    adopted: int = 0
    started_unix: float = field(default_factory=time.time)


class NodeService:
    """Runs one node's logic on the current event loop (see the module doc).

    Args:
        spec: the node.
        mesh: the ``mesh`` settings section.
        data_dir: where the mesh keys are (``<data_dir>/mesh/keys``).
        whole_process: with ``mesh.realtime_priority``, switch every thread of the
            process to SCHED_RR, not only the loop's (a MeshNode actor, whose process
            is the node's own; never a test's or a CLI's).
    """

    def __init__(
        self, spec: NodeSpec, mesh: MeshSettings, data_dir: Path, *, whole_process: bool = False
    ) -> None:
        self.spec = spec
        self.whole_process = whole_process
        self.mesh = mesh
        self.data_dir = Path(data_dir)
        self.log = loggers.mesh.bind(node=spec.name)
        self.stats = ServiceStats()
        self.logic: MeshNodeLogic | None = None
        self.sink: KernelRouteSink | None = None
        self.transport: UdpTransport | None = None
        self.watcher: LinkWatcher | None = None
        self._worker: NetnsWorker | None = None
        self.realtime = False
        self._tasks: list[asyncio.Task[None]] = []
        self._by_ifname = {link.ifname: peer for peer, link in spec.links.items()}

    async def start(self) -> None:
        """Open sockets and netlink, adopt the kernel's routes, start the loops.

        Call it on the thread that runs the event loop: with
        ``mesh.realtime_priority`` that thread is switched to SCHED_RR (and, with
        ``whole_process``, every thread of the process).
        """
        spec, mesh = self.spec, self.mesh
        self.realtime = set_realtime(mesh.realtime_priority)
        if self.whole_process:
            set_realtime_process(mesh.realtime_priority)
        if mesh.realtime_priority and not self.realtime:
            self.log.warning("no_realtime_priority", fix="run as root or grant CAP_SYS_NICE")
        self._worker = await asyncio.to_thread(NetnsWorker, spec.netns, mesh.realtime_priority)
        self.sink = KernelRouteSink(
            self._worker,
            {peer: NextHop(link.ifname, link.peer_address) for peer, link in spec.links.items()},
            spec.destinations,
            source=spec.loopback,
            routes=KernelRoutes(proto=mesh.route_protocol, guard_foreign=spec.guard_foreign),
        )
        await asyncio.to_thread(self.sink.load)
        codec = await asyncio.to_thread(SecureCodec.from_settings, spec.name, mesh, self.data_dir)
        self.transport = UdpTransport(spec.netns, spec.links, self._receive, mesh.udp_port)
        self.logic = MeshNodeLogic(
            spec.name,
            list(spec.links),
            MonotonicClock(),
            self.transport,
            self.sink,
            codec,
            mesh,
            link_costs=spec.costs,
        )
        if mesh.failover:
            self.stats.adopted = self.logic.adopt()
        else:
            await asyncio.to_thread(self.sink.flush)
        await self.transport.start()
        self.watcher = LinkWatcher(spec.netns, set(self._by_ifname), self._carrier)
        await self.watcher.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._tick_loop(), name=f"tick-{spec.name}"),
            loop.create_task(self._resync_loop(), name=f"resync-{spec.name}"),
        ]
        self.stats.started_unix = time.time()
        self.log.info("node_started", links=len(spec.links), adopted=self.stats.adopted)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not any(task.done() for task in self._tasks)

    def _receive(self, neighbor: str, payload: bytes, arrived: float | None) -> None:
        if self.logic is not None:
            self.logic.receive(neighbor, payload, arrived)

    def _carrier(self, ifname: str, up: bool) -> None:
        neighbor = self._by_ifname.get(ifname)
        if neighbor is not None and self.logic is not None:
            self.log.info("carrier", neighbor=neighbor, up=up)
            if self.sink is not None:
                self.sink.suspect()  # the kernel drops routes through a link that went down
            self.logic.link_event(neighbor, up)

    async def _tick_loop(self) -> None:
        """Tick on an absolute schedule, so a slow pass does not shift later ones.

        Not on a grid shared by the host's nodes: neighbours' hellos would then
        arrive at our own tick, give or take the scheduling jitter, and half the
        ticks would count a hello as missed that arrives a moment later."""
        interval = self.mesh.probe_interval_s
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            started = loop.time()
            late = started - due
            try:
                if self.logic is not None and self.transport is not None:
                    self.transport.poll()  # the hellos that came since the last tick
                    self.logic.tick()
            except Exception:
                self.log.exception("tick_failed")
            took = loop.time() - started
            st = self.stats
            st.ticks += 1
            st.last_tick_s = took
            st.max_tick_s = max(st.max_tick_s, took)
            if late > SLOW_TICK_FACTOR * interval:
                st.slow_ticks += 1
                if st.slow_ticks % 100 == 1:
                    self.log.warning("slow_tick", late_ms=round(late * 1e3, 1), count=st.slow_ticks)
            due += interval
            if due < loop.time():  # far behind: skip the missed ticks, do not burst
                due = loop.time() + interval
            await asyncio.sleep(due - loop.time())

    async def _resync_loop(self) -> None:
        passes = 0
        while True:
            await asyncio.sleep(self.mesh.resync_interval_s)
            passes += 1
            if self.realtime and self.whole_process:
                set_realtime_process(self.mesh.realtime_priority)  # threads started since
            if self.sink is None or not (self.sink.suspected or passes % AUDIT_EVERY == 0):
                continue
            try:
                self.stats.resync_fixes += await asyncio.wrap_future(self.sink.resync())
            except MeshError as exc:
                self.log.warning("route_resync_failed", error=exc.message)
            except Exception:
                self.log.exception("route_resync_crashed")

    def snapshot(self) -> NodeSnapshot:
        if self.logic is None:
            raise MeshError(f"node {self.spec.name} has not started", fix="wait for ready()")
        return self.logic.snapshot()

    def status(self) -> dict[str, Any]:
        """Small, JSON-friendly state for status tables."""
        tc = self.transport.counters if self.transport else None
        return {
            "node": self.spec.name,
            "running": self.running,
            "links_up": sum(1 for m in self.logic.monitors.values() if m.up) if self.logic else 0,
            "links": len(self.spec.links),
            "routes": len(self.sink.installed()) if self.sink else 0,
            "backups_settled": self.logic.backups_settled if self.logic else False,
            "ticks": self.stats.ticks,
            "slow_ticks": self.stats.slow_ticks,
            "adopted": self.stats.adopted,
            "started_unix": self.stats.started_unix,
            "route_write_errors": self.sink.errors if self.sink else 0,
            "sent": tc.sent if tc else 0,
            "received": tc.received if tc else 0,
            "cost_overrides": dict(self.logic.overrides) if self.logic else {},
        }

    def installed(self) -> Mapping[str, Any]:
        return self.sink.installed() if self.sink else {}

    async def stop(self, flush_routes: bool = False) -> None:
        """Stop loops and close sockets; with ``flush_routes`` also remove our routes."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.watcher is not None:
            self.watcher.close()
        if self.transport is not None:
            self.transport.close()
        if self.sink is not None and flush_routes:
            await asyncio.to_thread(self.sink.flush)
        if self._worker is not None:
            await asyncio.to_thread(self._worker.close)
            self._worker = None
        self.log.info("node_stopped", flushed=flush_routes)
