"""The twin's predicted reachability equals what the mesh shows for the same failure:
the simulator (routes followed hop by hop) and the netns mesh (real pings)."""

from __future__ import annotations

import itertools

import pytest

from tests.helpers import wait_for
from x0tta6bl4.config import MeshSettings, Settings
from x0tta6bl4.mesh.sim import SimBackend
from x0tta6bl4.mesh.topology import Topology, ring_chords
from x0tta6bl4.twin import DigitalTwin
from x0tta6bl4.twin.validate import faults_of, mismatches, observe, settle


def _scenarios(topo: Topology) -> list[dict]:
    """A link failure, a node failure, and two link failures that cut the mesh in two."""
    twin = DigitalTwin(topo)
    cut = next(
        [a.key, b.key]
        for a, b in itertools.combinations(topo.links, 2)
        if twin.what_if(fail_links=[a.key, b.key]).partitions_created
    )
    return [
        {"fail_links": [topo.links[0].key], "fail_nodes": []},
        {"fail_links": [], "fail_nodes": [topo.names[3]]},
        {"fail_links": cut, "fail_nodes": []},
    ]


def _ends(topo: Topology, key: str) -> tuple[str, str]:
    return next(link.ends for link in topo.links if link.key == key)


@pytest.mark.parametrize("scenario", range(3))
def test_twin_agrees_with_the_simulator(scenario) -> None:
    topo = ring_chords(10)
    sc = _scenarios(topo)[scenario]
    sim = SimBackend(MeshSettings(backend="sim", byzantine=False), seed=2)
    sim.up(topo)
    assert sim.run_until(sim.converged, 30, 0.1) is not None
    predicted = DigitalTwin(topo).what_if(**sc)
    for fault in faults_of([_ends(topo, k) for k in sc["fail_links"]], sc["fail_nodes"]):
        sim.inject(fault)
    seen = settle(
        lambda: observe(sim.reachable, topo.names), min_wait_s=2.0, timeout_s=10, step=sim.run
    )
    assert mismatches(predicted, seen) == []
    if scenario == 2:
        assert predicted.partitions_created == 1 and not all(seen.values())


@pytest.mark.root
@pytest.mark.ray
@pytest.mark.slow
def test_twin_agrees_with_the_netns_mesh(ray_session, tmp_path) -> None:
    from x0tta6bl4.actors.mesh_app import MeshComponent

    settings = Settings(data_dir=tmp_path, mesh={"backend": "netns", "nodes": 6, "consumer": ""})
    component = MeshComponent(settings)
    component.start(ray_session)
    topo = component.topology
    backend = component.backend
    try:
        pings = lambda a, b: backend.reachable(a, b, timeout_s=0.3)  # noqa: E731
        wait_for(
            lambda: all(observe(pings, topo.names).values()),
            timeout_s=60,
            message="the netns mesh to converge",
        )
        for sc in _scenarios(topo):
            predicted = DigitalTwin(topo).what_if(**sc)
            ids = [
                component.fault(f)
                for f in faults_of([_ends(topo, k) for k in sc["fail_links"]], sc["fail_nodes"])
            ]
            seen = settle(lambda: observe(pings, topo.names), min_wait_s=3.0, timeout_s=30)
            assert mismatches(predicted, seen) == [], sc
            for fault_id in ids:
                component.heal(fault_id)
            wait_for(
                lambda: all(observe(pings, topo.names).values()),
                timeout_s=60,
                message="the mesh to heal",
            )
    finally:
        component.stop()
