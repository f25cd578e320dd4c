"""On the real netns mesh: MeshNode telemetry reaches the Supervisor, a crashed node
becomes an incident, the Supervisor acts (through the MeshNode actors) and checks the
outcome against the routes the actors report."""

from __future__ import annotations

import time

import pytest
import ray

from tests.helpers import wait_for
from x0tta6bl4.actors.mesh_app import MeshComponent
from x0tta6bl4.actors.supervisor import spawn_supervisor
from x0tta6bl4.config import Settings
from x0tta6bl4.mapek.assemble import knowledge_path
from x0tta6bl4.mapek.knowledge import IncidentRow, Knowledge
from x0tta6bl4.mesh.ports import Fault, FaultKind

pytestmark = [pytest.mark.root, pytest.mark.ray, pytest.mark.slow]


def _settings(tmp_path, name: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        mesh={"backend": "netns", "nodes": 5, "consumer": name, "telemetry_interval_s": 0.5},
        supervisor={
            "interval_s": 0.5,
            "warmup_windows": 3,
            "stale_after_s": 3.0,
            "verify_after_s": 1.0,
            "heal_timeout_s": 30.0,
        },
    )


def test_crashed_node_becomes_an_incident_with_a_checked_outcome(ray_session, tmp_path) -> None:
    name = f"supervisor-netns-{time.time_ns()}"
    settings = _settings(tmp_path, name)
    component = MeshComponent(settings)
    supervisor = spawn_supervisor(
        settings, namespace=ray_session.namespace, topology=component.topology, name=name
    )
    component.start(ray_session)
    near_n2 = {"n2"} | {link.key for link in component.topology.links if "n2" in link.ends}
    try:

        def warmed_up() -> bool:
            status = ray.get(supervisor.status.remote())
            return status["ingest"]["batches"] > 20 and status["mapek"]["ticks"] > 10

        wait_for(warmed_up, timeout_s=90, interval_s=0.5, message="telemetry from the MeshNodes")
        started = time.time()
        fault_id = component.fault(Fault(FaultKind.NODE_CRASH, ("n2",)))

        def incident_at_n2(checked: bool = False) -> IncidentRow | None:
            kb = Knowledge(knowledge_path(settings))
            try:
                rows = [
                    r
                    for r in kb.incidents()
                    if r.root_cause in near_n2 and r.opened_at >= started and r.action
                ]
            finally:
                kb.close()
            if checked:
                rows = [r for r in rows if r.success is not None]
            return rows[0] if rows else None

        row = wait_for(incident_at_n2, timeout_s=60, interval_s=0.5, message="an incident at n2")
        component.heal(fault_id)  # the node's links come back (a reboot)
        row = wait_for(
            lambda: incident_at_n2(checked=True),
            timeout_s=90,
            interval_s=0.5,
            message=f"the outcome check of {row.kind} {row.root_cause} ({row.action})",
        )
        assert row.success, (row.kind, row.root_cause, row.action, row.outcome)
        assert row.state == "healed" and row.time_to_heal_s is not None
    finally:
        component.stop()
        ray.kill(supervisor, no_restart=True)
