"""On the real netns mesh: MeshNode telemetry reaches the Supervisor, a fault becomes an
incident with the right root cause, the Supervisor acts through the MeshNode actors and
checks the outcome against the routes the actors report.

* a lossy link (nftables loss): the link is the root cause, its cost is raised or it
  is drained at both ends, and the kernel's traffic moves off it;
* a crashed node (its links cut, its actor killed): the node is the root cause, it is
  restarted, and the outcome is checked once it is back.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import ray

from tests.helpers import wait_for
from x0tta6bl4.actors.mesh_app import MeshComponent
from x0tta6bl4.actors.supervisor import spawn_supervisor
from x0tta6bl4.config import Settings
from x0tta6bl4.mapek.assemble import knowledge_path
from x0tta6bl4.mapek.knowledge import IncidentRow, Knowledge
from x0tta6bl4.mapek.ports import follow_routes
from x0tta6bl4.mesh.nsutil import netns_exec
from x0tta6bl4.mesh.ports import Fault, FaultKind

pytestmark = [pytest.mark.root, pytest.mark.ray, pytest.mark.slow]


@contextmanager
def _mesh_and_supervisor(
    ray_session: Any, tmp_path: Any, **mesh: Any
) -> Iterator[tuple[Any, Any, Settings]]:
    """A 5-node netns mesh whose MeshNodes report to a fresh Supervisor, warmed up;
    ``mesh`` overrides mesh settings."""
    name = f"supervisor-netns-{time.time_ns()}"
    settings = Settings(
        data_dir=tmp_path,
        mesh={
            "backend": "netns",
            "nodes": 5,
            "consumer": name,
            "telemetry_interval_s": 0.5,
            **mesh,
        },
        supervisor={
            "interval_s": 0.5,
            "warmup_windows": 3,
            "stale_after_s": 3.0,
            "verify_after_s": 1.0,
            "heal_timeout_s": 30.0,
        },
    )
    component = MeshComponent(settings)
    supervisor = spawn_supervisor(
        settings, namespace=ray_session.namespace, topology=component.topology, name=name
    )
    component.start(ray_session)
    try:
        wait_for(component.backend.all_reachable, timeout_s=60, message="a converged mesh")
        ticks = ray.get(supervisor.status.remote())["mapek"]["ticks"]

        def warmed_up() -> bool:  # baselines that saw the converged mesh
            status = ray.get(supervisor.status.remote())
            return status["ingest"]["batches"] > 20 and status["mapek"]["ticks"] > ticks + 10

        wait_for(warmed_up, timeout_s=90, interval_s=0.5, message="telemetry from the MeshNodes")
        yield component, supervisor, settings
    finally:
        component.stop()
        ray.kill(supervisor, no_restart=True)


def _incident(
    settings: Settings,
    since: float,
    root_cause: str,
    kind: str,
    checked: bool = False,
    actions: Collection[str] = (),
) -> IncidentRow | None:
    """The newest ``kind`` incident blaming ``root_cause`` opened after ``since`` that has
    an action (one of ``actions`` if given) and, with ``checked``, its outcome."""
    kb = Knowledge(knowledge_path(settings))
    try:
        rows = [
            r
            for r in kb.incidents()
            if r.root_cause == root_cause and r.kind == kind and r.opened_at >= since and r.action
        ]
    finally:
        kb.close()
    if actions:
        rows = [r for r in rows if r.action in actions]
    if checked:
        rows = [r for r in rows if r.success is not None]
    return rows[0] if rows else None


def _incidents(settings: Settings) -> list[tuple[str, str, str | None, bool | None]]:
    """(kind, root cause, action, success) of every incident, newest first."""
    kb = Knowledge(knowledge_path(settings))
    try:
        return [(r.kind, r.root_cause, r.action, r.success) for r in kb.incidents()]
    finally:
        kb.close()


def _kernel_next_hop(component: MeshComponent, src: str, dst: str) -> str:
    """The interface ``src``'s kernel sends packets for ``dst``'s loopback out of."""
    backend = component.backend
    target = backend.plan.loopbacks[dst]
    argv = netns_exec(backend.namespace(src), ["ip", "-j", "route", "get", target])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10).stdout
    return str(json.loads(out)[0]["dev"])


def test_lossy_link_is_avoided_and_traffic_moves(ray_session, tmp_path) -> None:
    # A lossy link, not a dead one.  At 40 % loss three hellos in a row miss about once
    # in 16 probes: with the default threshold the link also went down now and then,
    # its hold-down grew with each flap, and once it stayed down the mesh routed around
    # it and "do nothing" was the right call (2 of 9 runs timed out so, with only
    # "do nothing" incidents).  Ten in a row miss about once in 10^4 probes.
    with _mesh_and_supervisor(ray_session, tmp_path, miss_threshold=10) as (
        component,
        _supervisor,
        settings,
    ):
        link, (a, b) = "n1-n2", ("n1", "n2")
        direct = component.backend.plan.ends(a)[b].ifname
        assert _kernel_next_hop(component, a, b) == direct  # the link carries n1->n2 now
        started = time.time()
        component.fault(Fault(FaultKind.LOSS, (a, b), 40.0))
        # On a busy host the link may still drop out now and then (a stalled node):
        # while the mesh routes around it by itself, doing nothing is the right call and
        # heals an incident.  Wait for the round in which the Supervisor moves the costs.
        cost_actions = (f"raise cost of {link} x10", f"route around link {link}")
        try:
            row = wait_for(
                lambda: _incident(
                    settings, started, link, "link-degraded", checked=True, actions=cost_actions
                ),
                timeout_s=180,
                interval_s=0.5,
                message=f"a checked cost action on {link}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; incidents: {_incidents(settings)}") from None
        assert row.success, row.outcome
        # The costs the Supervisor set are in force at both ends ...
        snaps = {
            s.node: s for s in ray.get([h.snapshot.remote() for h in component.actors.values()])
        }
        assert snaps[a].overrides.get(b) == snaps[b].overrides.get(a)
        assert snaps[a].overrides.get(b, 1.0) > 1.0

        def moved_off() -> bool:
            """No installed route crosses the lossy link, and the kernel forwards n1->n2
            another way.  Waited for: a run of lost hellos can still take the link down
            at one end, which then keeps its direct route to the other (a silent
            neighbour may be a restarting one) until both ends agree."""
            snaps = ray.get([h.snapshot.remote() for h in component.actors.values()])
            routes = {snap.node: snap.routes for snap in snaps}
            for src, dst in itertools.permutations(sorted(routes), 2):
                path = follow_routes(routes, src, dst).path
                if {(a, b), (b, a)} & set(itertools.pairwise(path)):
                    return False
            return _kernel_next_hop(component, a, b) != direct

        wait_for(moved_off, timeout_s=15, interval_s=0.2, message=f"routes off {link}")
        # ... and the other way delivers.
        assert wait_for(lambda: component.reachable(a, b), timeout_s=10, message="n1 -> n2")


def test_crashed_node_is_the_root_cause_and_is_restarted(ray_session, tmp_path) -> None:
    with _mesh_and_supervisor(ray_session, tmp_path) as (component, _supervisor, settings):
        started = time.time()
        fault_id = component.fault(Fault(FaultKind.NODE_CRASH, ("n2",)))
        row = wait_for(
            lambda: _incident(settings, started, "n2", "node-down"),
            timeout_s=60,
            interval_s=0.5,
            message="a node-down incident blaming n2",
        )
        assert row.action == "restart node n2", row.action
        component.heal(fault_id)  # the node's links come back (a reboot)
        row = wait_for(
            lambda: _incident(settings, started, "n2", "node-down", checked=True),
            timeout_s=90,
            interval_s=0.5,
            message=f"the outcome check of {row.kind} {row.root_cause} ({row.action})",
        )
        assert row.success, (row.kind, row.root_cause, row.action, row.outcome)
        assert row.state == "healed" and row.time_to_heal_s is not None
        assert wait_for(lambda: component.reachable("n1", "n2"), timeout_s=10, message="n1->n2")
