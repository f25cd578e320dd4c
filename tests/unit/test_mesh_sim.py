"""SimBackend: convergence and healing of 50-200 nodes, faults, a 1,000-node smoke test."""

from __future__ import annotations

import pytest

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import MeshError, TopologyError
from x0tta6bl4.mesh.ports import Backend, Fault, FaultKind
from x0tta6bl4.mesh.sim import SimBackend, measure_flood, measure_spf
from x0tta6bl4.mesh.topology import Topology, grid, ring, ring_chords, waxman


def up(topology: Topology, **settings: object) -> SimBackend:
    sim = SimBackend(MeshSettings(backend="sim", **settings))  # type: ignore[arg-type]
    sim.up(topology)
    took = sim.run_until(sim.converged, timeout_s=5.0, step_s=0.05)
    assert took is not None, "did not converge"
    return sim


def hops(sim: SimBackend, src: str, dst: str) -> list[str]:
    path = [src]
    while path[-1] != dst:
        path.append(sim.sinks[path[-1]].routes[dst].next_hop)
    return path


def test_sim_backend_is_a_backend() -> None:
    sim: Backend = SimBackend()
    assert sim.kind == "sim"


def test_signed_mesh_of_fifty_nodes_converges_and_heals() -> None:
    sim = up(ring_chords(50))
    assert sum(sum(n.counters.rejected.values()) for n in sim.nodes.values()) == 0
    path = hops(sim, "n0", "n25")
    assert len(path) >= 3
    fault = Fault(FaultKind.LOSS, (path[1], path[2]), 100.0)
    sim.inject(fault)
    assert sim.faults == [fault]
    healed = sim.run_until(lambda: sim.reachable("n0", "n25"), timeout_s=1.0, step_s=0.002)
    assert healed is not None and healed <= 0.1
    sim.run(0.1)
    assert not sim.nodes[path[1]].monitors[path[2]].up
    assert sim.converged()
    sim.heal(fault)
    assert sim.faults == []
    back = sim.run_until(lambda: sim.nodes[path[1]].monitors[path[2]].up, timeout_s=1.0)
    assert back is not None and back >= 3 * sim.settings.probe_interval_s  # hold-down


@pytest.mark.parametrize(
    "topology",
    [pytest.param(waxman(200, seed=3), marks=pytest.mark.slow), grid(10)],
    ids=["waxman-200", "grid-100"],
)
def test_unsigned_meshes_converge_and_route_on_shortest_paths(topology: Topology) -> None:
    sim = up(topology, byzantine=False)
    # Every node's cost to every other matches the hop count (all links cost 1, no loss).
    node = sim.nodes["n0"]
    distances = {name: 0 for name in ["n0"]}
    frontier = ["n0"]
    while frontier:
        nxt = []
        for name in frontier:
            for other in topology.neighbors(name):
                if other not in distances:
                    distances[other] = distances[name] + 1
                    nxt.append(other)
        frontier = nxt
    assert {d: e.cost for d, e in node.table.items()} == {
        d: float(h) for d, h in distances.items() if d != "n0"
    }


def test_carrier_loss_heals_without_time_passing() -> None:
    sim = up(grid(6), byzantine=False)
    path = hops(sim, "n0", "n35")
    sim.inject(Fault(FaultKind.LINK_DOWN, (path[2], path[3])))
    assert sim.reachable("n0", "n35")  # local repair happened inside inject()
    assert sim.run_until(sim.converged, timeout_s=1.0) is not None


def test_node_crash_and_recovery() -> None:
    sim = up(ring_chords(30), byzantine=False)
    crash = Fault(FaultKind.NODE_CRASH, ("n7",))
    sim.inject(crash)
    assert not sim.reachable("n0", "n7")
    assert sim.run_until(sim.converged, timeout_s=1.0) is not None
    assert all("n7" not in hops(sim, "n6", d)[1:-1] for d in ("n8", "n20"))
    sim.heal(crash)
    assert sim.run_until(lambda: sim.reachable("n0", "n7"), timeout_s=2.0) is not None
    assert sim.run_until(sim.converged, timeout_s=2.0) is not None


def test_partition_and_heal() -> None:
    sim = up(grid(6), byzantine=False, stale_route_hold_s=0.5)
    left = tuple(f"n{r * 6 + c}" for r in range(6) for c in range(3))
    split = Fault(FaultKind.PARTITION, left)
    sim.inject(split)
    sim.run(1.5)
    assert not sim.reachable("n0", "n5")
    assert sim.converged()  # each side is whole
    # The far side is gone from the tables once the stale hold has passed.
    assert "n5" not in sim.sinks["n0"].routes
    sim.heal(split)
    assert sim.run_until(lambda: sim.reachable("n0", "n5"), timeout_s=2.0) is not None
    assert sim.run_until(sim.converged, timeout_s=2.0) is not None


def test_delay_raises_rtt_and_heals() -> None:
    sim = up(ring(4), byzantine=False)
    fault = Fault(FaultKind.DELAY, ("n0", "n1"), 5.0)
    sim.inject(fault)
    sim.run(1.0)
    rtt = sim.nodes["n0"].monitors["n1"].rtt_s
    assert rtt is not None and rtt == pytest.approx(0.010, rel=0.05)
    sim.heal(fault)
    sim.run(1.0)
    rtt = sim.nodes["n0"].monitors["n1"].rtt_s
    assert rtt is not None and rtt == pytest.approx(0.001, rel=0.1)


def test_partial_loss_raises_etx_and_moves_traffic() -> None:
    sim = up(ring(6), byzantine=False)
    assert hops(sim, "n0", "n2") == ["n0", "n1", "n2"]
    sim.inject(Fault(FaultKind.LOSS, ("n0", "n1"), 60.0))
    sim.run(3.0)
    etx = sim.nodes["n0"].monitors["n1"].etx
    assert etx > 3.0  # 1 / (0.4 * 0.4) = 6.25 in expectation
    assert hops(sim, "n0", "n2") == ["n0", "n5", "n4", "n3", "n2"]


def test_bad_faults_and_unknown_nodes_are_clear_errors() -> None:
    sim = up(ring(4), byzantine=False)
    with pytest.raises(TopologyError, match="no link between n0 and n2"):
        sim.inject(Fault(FaultKind.LINK_DOWN, ("n0", "n2")))
    with pytest.raises(TopologyError, match="needs two nodes"):
        sim.inject(Fault(FaultKind.LOSS, ("n0",), 50.0))
    with pytest.raises(TopologyError, match="unknown node"):
        sim.inject(Fault(FaultKind.NODE_CRASH, ("n99",)))
    sim.down()
    with pytest.raises(MeshError, match="not up"):
        sim.restart("n0")


def test_reachable_detects_loops_and_dead_links() -> None:
    sim = up(ring(4), byzantine=False)
    sim.sinks["n0"].routes["n2"] = sim.sinks["n0"].routes["n1"]
    sim.sinks["n1"].routes["n2"] = sim.sinks["n1"].routes["n0"]
    assert not sim.reachable("n0", "n2")  # n0 -> n1 -> n0
    sim.links["n2-n3"].up = False
    assert not sim.reachable("n3", "n2") or hops(sim, "n3", "n2")[1] != "n2"


def test_measure_spf_small() -> None:
    assert measure_spf(n=100, seed=2, repeats=3) > 0


def test_warm_start_matches_a_cold_start() -> None:
    topology = ring_chords(40)
    cold = up(topology, byzantine=False)
    warm = SimBackend(MeshSettings(backend="sim", byzantine=False))
    warm.up(topology, warm=True)
    assert warm.converged()
    for name in topology.names:
        assert {d: e.cost for d, e in warm.nodes[name].table.items()} == {
            d: e.cost for d, e in cold.nodes[name].table.items()
        }
    warm.run(0.5)  # hellos start flowing: nothing flaps, no database storms
    assert all(n.counters.link_downs == 0 for n in warm.nodes.values())
    assert max(n.counters.lsas_accepted for n in warm.nodes.values()) < len(topology)


@pytest.mark.slow
def test_thousand_node_smoke() -> None:
    flood = measure_flood(n=1000, seed=1, silent=False)
    assert flood.nodes == 1000
    assert flood.detect_virtual_ms == 0  # carrier loss: both ends know at once
    assert 0 < flood.spread_virtual_ms < 1000
    assert measure_spf(n=1000, seed=1, repeats=3) > 0


def test_hybrid_pqc_beacons_converge() -> None:
    sim = up(ring(4), pqc_beacons=True)
    node = sim.nodes["n0"]
    assert node.codec.pqc
    entry = node.lsdb.get("n2")
    assert entry is not None and len(entry.raw) > 2420 + 64
    assert sum(node.counters.rejected.values()) == 0
