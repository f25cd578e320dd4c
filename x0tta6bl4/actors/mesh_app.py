"""The ``mesh`` component of the app: a mesh of MeshNode actors, or the simulator.

Enabled by ``mesh.enabled``.  ``mesh.backend``:

* ``netns`` (``auto`` as root): a network namespace per node on this host,
  one MeshNode actor per node routing real packets through the kernel;
* ``host``: the real interfaces of the Ray nodes, from ``mesh.topology_file``;
* ``sim`` (``auto`` otherwise): the in-process simulator, stepped in real
  time by a thread of the driver.

``stop`` leaves nothing behind: actors are stopped (their routes flushed)
and killed, the namespaces, peer processes and the run's state file go.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.mesh_node import spawn_node, wait_ready
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError, MeshError, TopologyError
from x0tta6bl4.mesh.ports import Fault, FaultKind
from x0tta6bl4.mesh.security import keys_dir, provision
from x0tta6bl4.mesh.service import NodeSpec, node_specs
from x0tta6bl4.mesh.topology import Topology, generate

__all__ = ["MeshComponent", "heal_faults", "inject_fault", "resolve_backend", "set_link_cost"]

log = loggers.mesh

_STOP_TIMEOUT_S = 15.0


def resolve_backend(settings: Settings) -> str:
    """``auto`` becomes ``netns`` as root and ``sim`` otherwise."""
    kind = settings.mesh.backend
    if kind == "auto":
        return "netns" if os.geteuid() == 0 else "sim"
    return kind


class MeshComponent:
    """Brings a mesh up on Ray and takes it down (see the module doc)."""

    name = "mesh"

    def __init__(self, settings: Settings, topology: Topology | None = None) -> None:
        self.settings = settings
        mesh = settings.mesh
        self.topology = topology or generate(mesh.topology, mesh.nodes, seed=mesh.seed)
        self.kind = resolve_backend(settings)
        self.backend: Any = None
        self.actors: dict[str, ActorHandle[Any]] = {}
        self.specs: dict[str, NodeSpec] = {}
        self.run_id: str | None = None
        self.started_s: float | None = None
        self._sim_thread: threading.Thread | None = None
        self._sim_stop = threading.Event()
        self._sim_lock = threading.Lock()
        """The simulator is not thread-safe: its stepping thread and callers take turns."""

    def start(self, ray_info: RayInfo) -> None:
        started = time.monotonic()
        if self.kind == "sim":
            self._start_sim()
        else:
            self._start_kernel(ray_info)
        self.started_s = time.monotonic() - started
        log.info(
            "mesh_up",
            backend=self.kind,
            nodes=len(self.topology),
            run=self.run_id,
            seconds=round(self.started_s, 2),
        )

    def _start_kernel(self, ray_info: RayInfo) -> None:
        if self.kind == "netns":
            from x0tta6bl4.mesh.netns import NetnsBackend

            backend = NetnsBackend(self.settings.data_dir)
            self.backend, self.run_id = backend, backend.run_id
            backend.up(self.topology)
            self.specs = node_specs(self.topology, backend._require_plan())
        else:
            from x0tta6bl4.mesh.host import HostBackend

            host = HostBackend.from_settings(self.settings)
            self.backend, self.run_id = host, "host"
            host.up(host.topology)
            self.topology = host.topology
            self.specs = host.specs()
        try:
            if self.settings.mesh.byzantine:
                provision(
                    keys_dir(self.settings.data_dir),
                    self.topology.names,
                    self.settings.mesh.pqc_beacons,
                )
            consumer = self.settings.mesh.consumer or None
            for name, spec in self.specs.items():
                self.actors[name] = spawn_node(
                    spec,
                    self.settings,
                    self.run_id,
                    ray_namespace=ray_info.namespace,
                    consumer=consumer,
                )
            wait_ready(self.actors, self.settings.mesh.start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start_sim(self) -> None:
        from x0tta6bl4.mesh.sim import SimBackend

        sim = SimBackend(self.settings.mesh, seed=self.settings.mesh.seed)
        sim.up(self.topology)
        self.backend, self.run_id = sim, "sim"
        self._sim_stop.clear()
        self._sim_thread = threading.Thread(target=self._step_sim, name="x0-sim", daemon=True)
        self._sim_thread.start()

    def _step_sim(self) -> None:
        """Advance the simulator's virtual time with the wall clock."""
        last = time.monotonic()
        while not self._sim_stop.wait(0.1):
            now = time.monotonic()
            with self._sim_lock:
                self.backend.run(now - last)
            last = now

    # --- faults ---------------------------------------------------------------------

    def fault(self, fault: Fault) -> str:
        """Inject ``fault``; a node-crash also kills that node's actor (Ray restarts it)."""
        if self.kind == "sim":
            with self._sim_lock:
                self.backend.inject(fault)
            return f"sim:{fault.kind.value}:{','.join(fault.targets)}"
        if self.kind != "netns":
            raise MeshError(
                "fault injection needs the netns or sim backend",
                fix="run with --set mesh.backend=netns",
            )
        fault_id: str = self.backend.faults.inject(fault)
        if fault.kind is FaultKind.NODE_CRASH:
            for node in fault.targets:
                ray.kill(self.actors[node], no_restart=False)
        return fault_id

    def heal(self, fault_id: str | None = None) -> list[str]:
        if self.kind == "sim":
            with self._sim_lock:
                undone = [f"sim:{f.kind.value}" for f in list(self.backend.faults)]
                for fault in list(self.backend.faults):
                    self.backend.heal(fault)
            return undone
        healed: list[str] = self.backend.faults.heal(fault_id)
        return healed

    def reachable(self, src: str, dst: str) -> bool:
        """Whether the data plane delivers from ``src`` to ``dst`` right now."""
        if self.kind == "sim":
            with self._sim_lock:
                return bool(self.backend.reachable(src, dst))
        return bool(self.backend.reachable(src, dst))

    # --- status and teardown ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        if self.kind == "sim":
            with self._sim_lock:
                converged = bool(self.backend and self.backend.converged())
            return {"backend": "sim", "nodes": len(self.topology), "converged": converged}
        refs: list[ray.ObjectRef[dict[str, Any]]] = [
            actor.status.remote() for actor in self.actors.values()
        ]
        running = routes = 0
        for ref in refs:
            try:
                report: dict[str, Any] = ray.get(ref, timeout=5)
            except (ray.exceptions.RayError, TimeoutError):
                continue
            running += bool(report["running"])
            routes += report["routes"]
        return {
            "backend": self.kind,
            "run": self.run_id,
            "nodes": len(self.actors),
            "running": running,
            "routes": routes,
        }

    def stop(self) -> None:
        """Stop and kill the actors, then remove what the backend created; idempotent."""
        if self._sim_thread is not None:
            self._sim_stop.set()
            self._sim_thread.join(timeout=5)
            self._sim_thread = None
        refs = [actor.stop.remote(flush_routes=True) for actor in self.actors.values()]
        if refs:
            try:
                ray.get(refs, timeout=_STOP_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError) as exc:
                log.warning("mesh_node_stop_failed", error=str(exc))
        for actor in self.actors.values():
            ray.kill(actor, no_restart=True)
        self.actors.clear()
        if self.backend is not None:
            self.backend.down()
            self.backend = None
        log.info("mesh_down", run=self.run_id)


def inject_fault(settings: Settings, fault: Fault, run_id: str | None = None) -> str:
    """Inject ``fault`` into a running netns mesh (the newest run under ``data_dir``).

    A node-crash also kills that node's MeshNode actor when this process is
    connected to the Ray that runs it; Ray restarts the actor, which finds
    its links down until the fault is healed.
    """
    from x0tta6bl4.actors.mesh_node import actor_name
    from x0tta6bl4.mesh.netns import NetnsBackend

    backend = NetnsBackend.attach(settings.data_dir, run_id)
    try:
        fault_id: str = backend.faults.inject(fault)
    finally:
        backend.close()
    if fault.kind is FaultKind.NODE_CRASH and ray.is_initialized():
        for node in fault.targets:
            try:
                actor = ray.get_actor(
                    actor_name(backend.run_id, node), namespace=settings.ray.namespace
                )
            except ValueError:
                continue
            ray.kill(actor, no_restart=False)
    return fault_id


def heal_faults(
    settings: Settings, fault_id: str | None = None, run_id: str | None = None
) -> list[str]:
    """Heal one fault by id, or all active faults, of a running netns mesh."""
    from x0tta6bl4.mesh.netns import NetnsBackend

    backend = NetnsBackend.attach(settings.data_dir, run_id)
    try:
        healed: list[str] = backend.faults.heal(fault_id)
    finally:
        backend.close()
    return healed


def set_link_cost(
    settings: Settings,
    a: str,
    b: str,
    cost: float | None,
    run_id: str | None = None,
    namespace: str | None = None,
) -> None:
    """Override the cost of link ``a-b`` at both ends of a running netns mesh
    (``MeshNode.set_link_cost``: None clears, ``math.inf`` drains); needs this process
    connected to the Ray cluster that runs the mesh's actors."""
    from x0tta6bl4.actors.mesh_node import actor_name
    from x0tta6bl4.mesh.netns import NetnsBackend

    if not ray.is_initialized():
        raise ClusterError(
            "setting a link cost needs the Ray cluster that runs the mesh",
            fix="pass --address (or connect() to it) first",
        )
    backend = NetnsBackend.attach(settings.data_dir, run_id)
    try:
        backend._require_plan().ends(a)[b]
    except KeyError as exc:
        raise TopologyError(
            f"run {backend.run_id} has no link {a}-{b}", fix="name both ends of a link"
        ) from exc
    finally:
        backend.close()
    handles = {}
    for node in (a, b):
        try:
            handles[node] = ray.get_actor(
                actor_name(backend.run_id, node), namespace=namespace or settings.ray.namespace
            )
        except ValueError as exc:
            raise ClusterError(
                f"no MeshNode actor for {node} of run {backend.run_id} in this Ray cluster",
                fix="connect to the cluster that runs `x0tta6bl4 mesh up`",
            ) from exc
    if cost is not None and not cost > 0:
        raise MeshError(
            f"link cost {cost!r} must be a positive number",
            fix="pass a cost > 0, math.inf to drain the link, or None to clear",
        )
    ray.get([handles[a].set_link_cost.remote(b, cost), handles[b].set_link_cost.remote(a, cost)])
