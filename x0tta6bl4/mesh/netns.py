"""``NetnsBackend``: every mesh node a network namespace, every link a veth pair.

Built from a :class:`~x0tta6bl4.mesh.topology.Topology` and a run id with the
plan of :mod:`x0tta6bl4.mesh.addressing`.  Before it creates anything, the
backend writes a state file ``<data_dir>/mesh/runs/<run_id>.json`` holding the
topology, so another process (``x0tta6bl4 mesh fault``, ``mesh routes``) can
attach to the run, and ``mesh clean`` can remove exactly what the run made,
also after a crash.  Discovery by the ``x0-<run>-`` name prefix catches what a
lost state file would miss.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from x0tta6bl4 import loggers
from x0tta6bl4.errors import InterfaceError, MeshError, PrivilegeError
from x0tta6bl4.mesh.addressing import (
    NS_PREFIX,
    AddressPlan,
    new_run_id,
    parse_namespace,
    plan,
    validate_run_id,
)
from x0tta6bl4.mesh.nsutil import (
    NetnsWorker,
    create_netns,
    delete_netns,
    kill_pids,
    list_netns,
    netns_exec,
    netns_exists,
    pids_in_netns,
    write_sysctl,
)
from x0tta6bl4.mesh.ports import Fault
from x0tta6bl4.mesh.topology import Topology

__all__ = ["CleanReport", "NetnsBackend", "clean", "runs_dir"]

log = loggers.mesh

_NODE_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.forwarding": "1",
    # Link-local IPv6 at once (babeld speaks it); no 1 s duplicate address detection.
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}

_VETH_INDEX_BASE = 1000
"""One end of every veth gets interface index 1000 + link number: the kernel's link
watch takes a device whose index equals its peer's (2 and 2 in two fresh namespaces)
for a physical one and may defer its carrier changes; with distinct indexes the far
end's carrier loss reached the near end's routing in 6-8 ms instead of 11-14 (see
docs/mesh.md).  Namespaces number their own devices from 1, so these never collide."""


def runs_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "mesh" / "runs"


def _netlink_error(exc: NetlinkError, what: str, **context: Any) -> MeshError | PrivilegeError:
    if exc.code in (1, 13):  # EPERM, EACCES
        return PrivilegeError(f"{what}: {exc.args[1]}", **context)
    return InterfaceError(f"{what}: {exc.args[1]} (errno {exc.code})", **context)


class NetnsBackend:
    """A mesh of network namespaces on this host.

    Args:
        data_dir: where the run's state file and fault log go.
        run_id: names the run (``x0-<run_id>-<node>``); None picks a fresh one.
    """

    kind = "netns"

    def __init__(self, data_dir: Path, run_id: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.run_id = validate_run_id(run_id) if run_id else new_run_id()
        self.topology: Topology | None = None
        self.plan: AddressPlan | None = None
        self._workers: dict[str, NetnsWorker] = {}
        self._faults: Any = None

    # --- state ------------------------------------------------------------

    @property
    def state_file(self) -> Path:
        return runs_dir(self.data_dir) / f"{self.run_id}.json"

    @property
    def fault_log(self) -> Path:
        return runs_dir(self.data_dir) / f"{self.run_id}.faults.jsonl"

    @classmethod
    def attach(cls, data_dir: Path, run_id: str | None = None) -> NetnsBackend:
        """Open a run that another process brought up (the newest when ``run_id`` is None)."""
        states = sorted(runs_dir(data_dir).glob("*.json"), key=lambda p: p.stat().st_mtime)
        if run_id is not None:
            states = [p for p in states if p.stem == run_id]
        if not states:
            raise MeshError(
                f"no mesh run {run_id or ''} recorded under {runs_dir(data_dir)}".replace(
                    "  ", " "
                ),
                fix="start one with `x0tta6bl4 mesh up`, or pass --run with a listed id",
            )
        data = json.loads(states[-1].read_text(encoding="utf-8"))
        backend = cls(data_dir, data["run_id"])
        backend.topology = Topology.from_dict(data["topology"])
        backend.plan = plan(backend.topology, backend.run_id)
        return backend

    def _write_state(self, topology: Topology) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "run_id": self.run_id,
            "backend": self.kind,
            "pid": os.getpid(),
            "created_unix": time.time(),
            "topology": topology.to_dict(),
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state) + "\n", encoding="utf-8")
        tmp.replace(self.state_file)

    # --- build ------------------------------------------------------------

    def up(self, topology: Topology) -> None:
        """Create namespaces, loopbacks and veth pairs; on failure remove what was made.

        Raises :class:`MeshError` before touching anything when namespaces of
        this run id already exist (an earlier run that was not cleaned).
        """
        if os.geteuid() != 0:
            raise PrivilegeError("the netns backend creates network namespaces")
        leftovers = list_netns(f"{NS_PREFIX}{self.run_id}-")
        if leftovers:
            raise MeshError(
                f"network namespace {leftovers[0]} already exists (run {self.run_id} is in use)",
                fix=f"run `x0tta6bl4 mesh clean --run {self.run_id}`, or use another run id",
            )
        self.topology = topology
        self.plan = plan(topology, self.run_id)
        self._write_state(topology)
        started = time.perf_counter()
        created: list[str] = []
        try:
            self._build(self.plan, created)
        except BaseException:
            self.close()
            kill_pids(pids_in_netns(created))
            for name in created:
                delete_netns(name)
            self.state_file.unlink(missing_ok=True)
            raise
        log.info(
            "netns_mesh_up",
            run=self.run_id,
            nodes=len(topology),
            links=len(topology.links),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _build(self, p: AddressPlan, created: list[str]) -> None:
        for ns in p.namespaces.values():
            create_netns(ns)
            created.append(ns)
        for node, ns in p.namespaces.items():
            self._workers[node] = NetnsWorker(ns)
        self._each_node(lambda node, ipr: _setup_node(ipr, p.loopbacks[node]))
        pending: list[Future[None]] = []
        for link in p.links.values():
            peer_ns = p.namespaces[link.b.node]

            def add_veth(ipr: IPRoute, link: Any = link, peer_ns: str = peer_ns) -> None:
                try:
                    ipr.link(
                        "add",
                        ifname=link.a.ifname,
                        index=_VETH_INDEX_BASE + link.index,
                        kind="veth",
                        peer={"ifname": link.b.ifname, "net_ns_fd": peer_ns},
                    )
                except NetlinkError as exc:
                    raise _netlink_error(
                        exc, f"creating veth for {link.key}", link=link.key
                    ) from exc

            pending.append(self._workers[link.a.node].submit(add_veth))
        _wait(pending)
        self._each_node(lambda node, ipr: _setup_ends(ipr, p.ends(node).values()))

    def _each_node(self, fn: Callable[[str, IPRoute], None]) -> None:
        _wait([worker.submit(partial(fn, node)) for node, worker in self._workers.items()])

    def worker(self, node: str) -> NetnsWorker:
        """The netlink worker of ``node``'s namespace (started on first use)."""
        if node not in self._workers:
            self._workers[node] = NetnsWorker(self.namespace(node))
        return self._workers[node]

    def namespace(self, node: str) -> str:
        p = self._require_plan()
        try:
            return p.namespaces[node]
        except KeyError:
            raise MeshError(
                f"node {node} is not in mesh run {self.run_id}",
                fix=f"use one of {', '.join(sorted(p.namespaces))}",
            ) from None

    def _require_plan(self) -> AddressPlan:
        if self.plan is None:
            raise MeshError("the netns mesh is not up", fix="call up(topology) or attach()")
        return self.plan

    # --- teardown -----------------------------------------------------------

    def close(self) -> None:
        """Stop this process's netlink workers (the mesh itself stays)."""
        for worker in self._workers.values():
            worker.close()
        self._workers.clear()

    def down(self) -> None:
        """Kill processes in our namespaces, delete the namespaces, forget the run."""
        self.close()
        names = list(self.plan.namespaces.values()) if self.plan else []
        clean(self.data_dir, self.run_id, extra=names)

    # --- faults and reachability -----------------------------------------

    @property
    def faults(self) -> Any:
        """The run's :class:`~x0tta6bl4.mesh.faults.FaultInjector` (log under data_dir)."""
        if self._faults is None:
            from x0tta6bl4.mesh.faults import FaultInjector

            self._faults = FaultInjector(self)
        return self._faults

    def inject(self, fault: Fault) -> None:
        self.faults.inject(fault)

    def heal(self, fault: Fault) -> None:
        self.faults.heal_fault(fault)

    def reachable(self, src: str, dst: str, timeout_s: float = 1.0) -> bool:
        """One real ICMP echo from ``src``'s namespace to ``dst``'s loopback."""
        p = self._require_plan()
        target = p.loopbacks.get(dst, dst)
        argv = netns_exec(
            self.namespace(src), ["ping", "-n", "-q", "-c", "1", "-W", f"{timeout_s:g}", target]
        )
        result = subprocess.run(argv, capture_output=True, check=False, timeout=timeout_s + 5)
        return result.returncode == 0

    def all_reachable(self, timeout_s: float = 1.0) -> bool:
        """Whether every node reaches every other node's loopback right now."""
        p = self._require_plan()
        return all(
            self.reachable(src, dst, timeout_s)
            for src in p.namespaces
            for dst in p.namespaces
            if src != dst
        )

    def set_link(self, a: str, b: str, up: bool) -> None:
        """Set both ends of the a-b link administratively up or down."""
        p = self._require_plan()
        ends = p.ends(a)
        if b not in ends:
            raise MeshError(f"no link between {a} and {b} in run {self.run_id}")
        futures = []
        for end in (ends[b], p.ends(b)[a]):

            def flip(ipr: IPRoute, ifname: str = end.ifname) -> None:
                try:
                    (index,) = ipr.link_lookup(ifname=ifname)
                    ipr.link("set", index=index, state="up" if up else "down")
                except (NetlinkError, ValueError) as exc:
                    raise InterfaceError(f"cannot set {ifname} {'up' if up else 'down'}") from exc

            futures.append(self.worker(end.node).submit(flip))
        _wait(futures)


def _setup_node(ipr: IPRoute, loopback: str) -> None:
    write_sysctl(_NODE_SYSCTLS)
    try:
        (lo,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=lo, state="up")
        ipr.addr("add", index=lo, address=loopback, prefixlen=32)
    except NetlinkError as exc:
        raise _netlink_error(exc, f"configuring lo with {loopback}") from exc


def _setup_ends(ipr: IPRoute, ends: Iterable[Any]) -> None:
    for end in ends:
        try:
            (index,) = ipr.link_lookup(ifname=end.ifname)
            ipr.addr("add", index=index, address=end.address, prefixlen=end.prefixlen)
            ipr.link("set", index=index, state="up")
        except NetlinkError as exc:
            raise _netlink_error(exc, f"configuring {end.ifname}", node=end.node) from exc


def _wait(futures: list[Future[Any]]) -> None:
    errors = []
    for future in futures:
        try:
            future.result(timeout=60)
        except MeshError as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@dataclass
class CleanReport:
    """What :func:`clean` removed."""

    namespaces: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    state_files: list[str] = field(default_factory=list)


def clean(data_dir: Path, run_id: str | None = None, extra: Iterable[str] = ()) -> CleanReport:
    """Remove the namespaces, processes and state of one run (or of every run).

    Our namespaces are those listed by state files under ``data_dir`` and any
    ``x0-<run>-<node>`` namespace found on the host (what a crash may leave
    when the state file is gone).  Processes inside them (peer daemons, a
    test's pinger) are killed by PID first so the namespaces really go.
    """
    report = CleanReport()
    states = sorted(runs_dir(data_dir).glob(f"{run_id or '*'}.json"))
    names = set(extra)
    for state in states:
        try:
            data = json.loads(state.read_text(encoding="utf-8"))
            topo = Topology.from_dict(data["topology"], require_connected=False)
            names.update(plan(topo, data["run_id"]).namespaces.values())
        except (OSError, ValueError, KeyError, MeshError) as exc:
            log.warning("unreadable_state_file", path=str(state), error=str(exc))
    prefix = f"{NS_PREFIX}{run_id}-" if run_id else NS_PREFIX
    names.update(name for name in list_netns(prefix) if parse_namespace(name))
    names = {n for n in names if netns_exists(n)}
    pids = pids_in_netns(names)
    kill_pids(pids)
    report.pids = sorted(pids)
    for name in sorted(names):
        if delete_netns(name):
            report.namespaces.append(name)
    for state in states:
        for path in (state, state.with_suffix(".faults.jsonl")):
            if path.exists():
                path.unlink()
                report.state_files.append(str(path))
    if report.namespaces or report.pids:
        log.info(
            "mesh_cleaned", run=run_id or "*", namespaces=len(report.namespaces), pids=report.pids
        )
    return report
