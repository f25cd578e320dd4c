"""The in-process mesh: many :class:`MeshNodeLogic` on a virtual clock, no kernel.

:class:`SimBackend` implements :class:`~x0tta6bl4.mesh.ports.Backend`.  Every
node runs the same logic as in a MeshNode actor; only the world is simulated:
datagrams travel through an event queue with per-link delay, loss and up/down
state, routes land in per-node tables, and ``reachable`` follows those tables
hop by hop like the kernel would.  Time is virtual, so a 1,000-node mesh runs
seconds of protocol time as fast as the CPU allows and every run with the
same seed is the same.

:func:`measure_spf` times one node's full SPF + LFA computation on a
1,000-node link-state database (benchmark key ``sim.spf_1000_ms``) and
:func:`measure_flood` how long one change takes to reach every node.
"""

from __future__ import annotations

import heapq
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import MeshError, TopologyError
from x0tta6bl4.mesh.linkstate import Lsdb
from x0tta6bl4.mesh.node import MeshNodeLogic
from x0tta6bl4.mesh.ports import Fault, FaultKind, Route
from x0tta6bl4.mesh.security import Keyring, NodeKey, SecureCodec
from x0tta6bl4.mesh.spf import routing_table
from x0tta6bl4.mesh.topology import Topology, link_key, waxman
from x0tta6bl4.mesh.wire import Lsa

__all__ = [
    "FloodMeasurement",
    "SimBackend",
    "SimLink",
    "SimRouteSink",
    "VirtualClock",
    "measure_flood",
    "measure_spf",
]

START_WALL = 1_800_000_000.0
"""Wall-clock seconds at virtual time 0 (message timestamps need a plausible epoch)."""


class VirtualClock:
    """A clock that moves only when the simulator says so."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t


class SimRouteSink:
    """One node's forwarding table (the simulator's kernel)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.applies = 0

    def apply(self, install: Sequence[Route], remove: Sequence[str]) -> None:
        self.applies += 1
        for route in install:
            self.routes[route.dest] = route
        for dest in remove:
            self.routes.pop(dest, None)

    def installed(self) -> Mapping[str, Route]:
        return dict(self.routes)


@dataclass
class SimLink:
    """One undirected link's data-plane state."""

    base_delay_s: float
    delay_s: float
    up: bool = True
    loss: float = 0.0

    @property
    def delivers(self) -> bool:
        return self.up and self.loss < 1.0


class _Transport:
    def __init__(self, backend: SimBackend, name: str) -> None:
        self.backend = backend
        self.name = name

    def send(self, neighbor: str, payload: bytes) -> None:
        self.backend._send(self.name, neighbor, payload)


@dataclass
class _Event:
    kind: int  # 0: tick, 1: delivery
    node: str
    src: str = ""
    payload: bytes = b""
    generation: int = 0
    """For ticks: the incarnation of the node's logic that scheduled it."""


class SimBackend:
    """A whole mesh in memory.

    Args:
        settings: mesh settings every node runs with (``byzantine`` decides
            whether keys are generated and datagrams signed).
        seed: seeds loss draws and tick phases.
        link_delay_s: one-way delay of a link unless a fault changes it.
    """

    kind = "sim"

    def __init__(
        self, settings: MeshSettings | None = None, *, seed: int = 1, link_delay_s: float = 0.0005
    ) -> None:
        self.settings = settings or MeshSettings(backend="sim")
        self.seed = seed
        self.link_delay_s = link_delay_s
        self.clock = VirtualClock()
        self.nodes: dict[str, MeshNodeLogic] = {}
        self.sinks: dict[str, SimRouteSink] = {}
        self.links: dict[str, SimLink] = {}
        self.crashed: set[str] = set()
        self.faults: list[Fault] = []
        self.topology: Topology | None = None
        self.delivered = 0
        self.dropped = 0
        self._rng = random.Random(seed)
        self._queue: list[tuple[float, int, _Event]] = []
        self._order = 0
        self._keys: dict[str, NodeKey] = {}
        self._keyring = Keyring()
        self._generation: dict[str, int] = {}

    # --- Backend ---------------------------------------------------------------------

    def up(self, topology: Topology, warm: bool = False) -> None:
        """Create every node with its links up.  Protocol state starts empty (a cold
        start) unless ``warm``: then every node starts with its links up, every LSA stored
        and its routes installed, as a mesh that converged long ago (cheap at 1,000+ nodes,
        where a cold start floods millions of datagrams)."""
        self.down()
        self.topology = topology
        for link in topology.links:
            self.links[link.key] = SimLink(
                self.link_delay_s + link.delay_ms / 1e3, self.link_delay_s + link.delay_ms / 1e3
            )
        if self.settings.byzantine:
            for name in topology.names:
                self._keys[name] = NodeKey.generate(name, self.settings.pqc_beacons)
                self._keyring.add(name, self._keys[name].public())
        for name in topology.names:
            self.sinks[name] = SimRouteSink()
            self._start(name)
        if warm:
            own = [node.warm_up() for node in self.nodes.values()]
            for node in self.nodes.values():
                node.prime(own)

    def down(self) -> None:
        self.nodes.clear()
        self.sinks.clear()
        self.links.clear()
        self.crashed.clear()
        self.faults.clear()
        self._queue.clear()
        self._generation.clear()
        self._keys.clear()
        self._keyring = Keyring()
        self.topology = None

    def inject(self, fault: Fault) -> None:
        self._perturb(fault, heal=False)
        if fault not in self.faults:
            self.faults.append(fault)

    def heal(self, fault: Fault) -> None:
        self._perturb(fault, heal=True)
        if fault in self.faults:
            self.faults.remove(fault)

    def reachable(self, src: str, dst: str) -> bool:
        """Follow installed next hops from ``src``; False on a missing route, a dead link
        or node, or a loop."""
        return self._walk(src, dst, {})

    # --- running ---------------------------------------------------------------------

    def run(self, duration_s: float) -> None:
        """Advance virtual time by ``duration_s``, processing every tick and delivery."""
        end = self.clock.t + duration_s
        queue = self._queue
        while queue and queue[0][0] <= end:
            at, _, event = heapq.heappop(queue)
            self.clock.t = at
            if event.node in self.crashed or event.node not in self.nodes:
                continue
            node = self.nodes[event.node]
            if event.kind == 0:
                if event.generation != self._generation[event.node]:
                    continue  # the tick chain of a replaced incarnation
                node.tick()
                self._tick_at(at + self.settings.probe_interval_s, event.node)
            else:
                node.receive(event.src, event.payload)
        self.clock.t = end

    def run_until(
        self, condition: Callable[[], bool], timeout_s: float, step_s: float | None = None
    ) -> float | None:
        """Run until ``condition()`` holds, checked every ``step_s`` of virtual time;
        returns the virtual seconds it took, or None after ``timeout_s``."""
        step = step_s or self.settings.probe_interval_s
        start = self.clock.t
        while self.clock.t - start < timeout_s:
            if condition():
                return self.clock.t - start
            self.run(step)
        return self.clock.t - start if condition() else None

    def converged(self, pairs: Sequence[tuple[str, str]] | None = None) -> bool:
        """Whether every pair (default: all pairs the live data plane connects) is reachable."""
        if pairs is not None:
            return all(self.reachable(a, b) for a, b in pairs)
        topology = self._topology()
        dead = [key for key, link in self.links.items() if not link.delivers]
        for part in topology.components(without_links=dead, without_nodes=self.crashed):
            for dst in part:
                memo: dict[str, bool] = {}
                if not all(self._walk(src, dst, memo) for src in part if src != dst):
                    return False
        return True

    def set_link_cost(self, node: str, peer: str, cost: float | None) -> None:
        """The operator's override of ``node``'s cost for its link to ``peer``
        (:meth:`MeshNodeLogic.set_link_cost`: ``None`` clears, ``math.inf`` drains), as a
        MeshNode actor's ``set_link_cost`` does.  Like there, a restart forgets it."""
        self._node_known(node)
        if node in self.crashed or node not in self.nodes:
            raise MeshError(f"node {node} is down", fix="heal the node-crash fault first")
        self.nodes[node].set_link_cost(peer, cost)

    def pause(self, name: str) -> None:
        """Stop node ``name``'s control logic while its routes keep forwarding, as while
        Ray restarts a crashed MeshNode actor; :meth:`restart` brings it back."""
        self._node_known(name)
        if self.nodes.pop(name, None) is not None:
            self._generation[name] += 1  # its tick chain ends

    def restart(self, name: str, logic: type[MeshNodeLogic] = MeshNodeLogic) -> None:
        """Restart node ``name``'s control logic only: its routes stay (non-stop
        forwarding) and the new logic adopts them, as after a MeshNode actor crash.
        ``logic`` may be a subclass (the twin's what-ifs, a misbehaving node in tests)."""
        self._topology()
        self._node_known(name)
        self._start(name, adopt=True, logic=logic)

    # --- internals -------------------------------------------------------------------

    def _start(
        self, name: str, adopt: bool = False, logic: type[MeshNodeLogic] = MeshNodeLogic
    ) -> None:
        topology = self._topology()
        wall = self._wall
        if self.settings.byzantine:
            codec = SecureCodec(
                self._keys[name],
                self._keyring,
                pqc=self.settings.pqc_beacons,
                hello_macs=self.settings.hello_macs,
                max_message_bytes=self.settings.max_message_bytes,
                replay_window_s=self.settings.replay_window_s,
                wall=wall,
            )
        else:
            codec = SecureCodec(
                None,
                None,
                byzantine=False,
                max_message_bytes=self.settings.max_message_bytes,
                wall=wall,
            )
        neighbors = topology.neighbors(name)
        node = logic(
            name,
            neighbors,
            self.clock,
            _Transport(self, name),
            self.sinks[name],
            codec,
            self.settings,
            link_costs={n: topology.link(name, n).cost for n in neighbors},
        )
        self.nodes[name] = node
        if adopt:
            node.adopt()
        self._generation[name] = self._generation.get(name, 0) + 1
        self._tick_at(self.clock.t + self._rng.random() * self.settings.probe_interval_s, name)

    def _wall(self) -> float:
        return START_WALL + self.clock.t

    def _tick_at(self, at: float, node: str) -> None:
        self._order += 1
        event = _Event(0, node, generation=self._generation[node])
        heapq.heappush(self._queue, (at, self._order, event))

    def _deliver_at(self, at: float, node: str, src: str, payload: bytes) -> None:
        self._order += 1
        heapq.heappush(self._queue, (at, self._order, _Event(1, node, src, payload)))

    def _send(self, src: str, dst: str, payload: bytes) -> None:
        link = self.links.get(link_key(src, dst))
        if link is None:
            raise MeshError(f"{src} has no link to {dst}")
        if not link.up or src in self.crashed or (link.loss and self._rng.random() < link.loss):
            self.dropped += 1
            return
        self.delivered += 1
        self._deliver_at(self.clock.t + link.delay_s, dst, src, payload)

    def _walk(self, src: str, dst: str, memo: dict[str, bool]) -> bool:
        path: list[str] = []
        seen: set[str] = set()
        cur = src
        result = False
        while True:
            if cur in memo:
                result = memo[cur]
                break
            if cur in self.crashed or cur in seen:
                break
            if cur == dst:
                result = True
                break
            seen.add(cur)
            path.append(cur)
            route = self.sinks[cur].routes.get(dst) if cur in self.sinks else None
            hop = self._forwarding_hop(cur, route) if route else None
            if hop is None:
                break
            cur = hop
        for hop in path:
            memo[hop] = result
        return result

    def _forwarding_hop(self, node: str, route: Route) -> str | None:
        """Where ``node``'s kernel sends ``route``'s traffic: the next hop, or the backup
        where the next hop's link lost carrier (a kernel skips routes through a link
        that is down); None where that link drops it."""
        hop = route.next_hop
        link = self.links.get(link_key(node, hop))
        if link is not None and not link.up and route.backup is not None:
            hop, link = route.backup, self.links.get(link_key(node, route.backup))
        return hop if link is not None and link.delivers else None

    def _topology(self) -> Topology:
        if self.topology is None:
            raise MeshError("the simulated mesh is not up", fix="call up(topology) first")
        return self.topology

    def _node_known(self, name: str) -> None:
        if name not in self.sinks:
            raise TopologyError(f"unknown node {name}", fix="see the topology's node list")

    def _link(self, a: str, b: str) -> SimLink:
        link = self.links.get(link_key(a, b))
        if link is None:
            raise TopologyError(f"no link between {a} and {b}", link=link_key(a, b))
        return link

    def _perturb(self, fault: Fault, heal: bool) -> None:
        targets = fault.targets
        if fault.kind in (FaultKind.LINK_DOWN, FaultKind.LOSS, FaultKind.DELAY):
            if len(targets) != 2:
                raise TopologyError(
                    f"a {fault.kind} fault needs two nodes, got {len(targets)}",
                    fix="name both ends of the link",
                )
            link = self._link(*targets)
            if fault.kind == FaultKind.LINK_DOWN:
                link.up = heal
                for a, b in (targets, targets[::-1]):
                    if a in self.nodes and a not in self.crashed:
                        self.nodes[a].link_event(b, up=heal)
            elif fault.kind == FaultKind.LOSS:
                link.loss = 0.0 if heal else min(1.0, max(0.0, fault.value / 100))
            else:
                link.delay_s = link.base_delay_s if heal else fault.value / 1e3
        elif fault.kind == FaultKind.NODE_CRASH:
            for name in targets:
                self._node_known(name)
                if heal and name in self.crashed:
                    self.crashed.discard(name)
                    self.sinks[name] = SimRouteSink()
                    self._start(name)
                elif not heal:
                    self.crashed.add(name)
        elif fault.kind == FaultKind.PARTITION:
            side = set(targets)
            for name in side:
                self._node_known(name)
            for edge in self._topology().links:
                if (edge.a in side) != (edge.b in side):
                    self.links[edge.key].loss = 0.0 if heal else 1.0


# --- measurements -------------------------------------------------------------------


def _full_lsdb(topology: Topology, owner: str) -> Lsdb:
    lsdb = Lsdb(owner, max_age_s=1e9)
    for seq, name in enumerate(topology.names, start=1):
        links = tuple(sorted((n, topology.link(name, n).cost) for n in topology.neighbors(name)))
        lsdb.install(Lsa(name, seq, START_WALL, links), b"", 0.0)
    return lsdb


def measure_spf(n: int = 1000, seed: int = 1, repeats: int = 20, cpu: bool = True) -> float:
    """Median milliseconds one node needs to compute its routes on an ``n``-node Waxman
    mesh: SPF from its LSDB (whose two-way graph is kept up to date as LSAs arrive) plus
    loop-free alternates for every destination (Dijkstra from every neighbour).  Sources
    cycle over ``repeats`` random nodes.  ``cpu`` times the computing thread's CPU, so
    other load on the machine does not inflate the figure; ``cpu=False`` times wall clock.
    """
    clock = time.thread_time if cpu else time.perf_counter
    topology = waxman(n, seed=seed)
    rng = random.Random(seed)
    sources = [rng.choice(topology.names) for _ in range(repeats)]
    lsdb = _full_lsdb(topology, sources[0])
    samples = []
    for source in sources:
        lsdb.owner = source
        started = clock()
        graph, _ = lsdb.graph()
        table = routing_table(graph, source)
        samples.append((clock() - started) * 1e3)
        if len(table) != n - 1:
            raise MeshError(f"SPF from {source} reached {len(table)} of {n - 1} nodes")
    return statistics.median(samples)


@dataclass(frozen=True)
class FloodMeasurement:
    nodes: int
    detect_virtual_ms: float
    """Virtual time from a silent link failure until both ends declared it down."""
    spread_virtual_ms: float
    """Virtual time from the failure until every node's LSDB lacks the link."""
    spread_wall_ms: float
    """Wall time the simulator needed for that (all nodes' floods and SPFs, one process)."""


def measure_flood(n: int = 1000, seed: int = 1, silent: bool = True) -> FloodMeasurement:
    """Warm-start an ``n``-node Waxman mesh in the simulator (unsigned datagrams), fail one
    link (silently: 100 % loss; else carrier loss) and time detection and the flood that
    tells every node.  Every node runs SPF + LFAs per change it hears: at 1,000 nodes a
    silent failure costs a couple of minutes of CPU, carrier loss about half."""
    topology = waxman(n, seed=seed)
    sim = SimBackend(MeshSettings(backend="sim", byzantine=False), seed=seed)
    sim.up(topology, warm=True)
    sim.run(0.1)
    victim = max(topology.links, key=lambda link: len(topology.neighbors(link.a)))
    a, b = victim.ends
    if silent:
        sim.inject(Fault(FaultKind.LOSS, (a, b), 100.0))
    else:
        sim.inject(Fault(FaultKind.LINK_DOWN, (a, b)))

    def detected() -> bool:
        return not (sim.nodes[a].monitors[b].up or sim.nodes[b].monitors[a].up)

    def spread() -> bool:
        for node in sim.nodes.values():
            entry = node.lsdb.get(a)
            if entry is not None and b in entry.links:
                return False
        return True

    started = time.perf_counter()
    detect = sim.run_until(detected, timeout_s=1.0, step_s=0.001)
    took = sim.run_until(spread, timeout_s=5.0, step_s=0.001)
    wall_ms = (time.perf_counter() - started) * 1e3
    if detect is None or took is None:
        raise MeshError(f"a link failure did not reach every simulated node of {n}")
    return FloodMeasurement(n, detect * 1e3, (detect + took) * 1e3, wall_ms)
