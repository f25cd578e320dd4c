"""The mesh component without root: ``auto`` falls back to the simulator (no Ray needed)."""

from __future__ import annotations

from tests.helpers import wait_for
from x0tta6bl4.actors.mesh_app import MeshComponent, resolve_backend
from x0tta6bl4.config import Settings
from x0tta6bl4.mesh.faults import parse_fault


def test_auto_backend_is_netns_for_root_and_sim_otherwise(monkeypatch) -> None:
    settings = Settings()
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert resolve_backend(settings) == "netns"
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert resolve_backend(settings) == "sim"
    assert resolve_backend(Settings(mesh={"backend": "host"})) == "host"


def test_sim_component_runs_in_real_time_takes_faults_and_stops() -> None:
    component = MeshComponent(Settings(mesh={"backend": "sim", "nodes": 6}))
    component.start(None)  # type: ignore[arg-type]
    try:
        wait_for(lambda: component.status()["converged"], 20, 0.1, "simulated mesh converged")
        fault_id = component.fault(parse_fault("partition", ["n0,n1,n2"]))
        assert fault_id.startswith("sim:partition")
        assert not component.reachable("n0", "n4")
        assert component.heal() == ["sim:partition"]
        wait_for(lambda: component.reachable("n0", "n4"), 20, 0.1, "n0 reaches n4 after heal")
    finally:
        component.stop()
    component.stop()  # idempotent
    assert component.backend is None
