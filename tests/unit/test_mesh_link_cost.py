"""MeshNodeLogic.set_link_cost: the operator's link-cost override and drain."""

from __future__ import annotations

import math

import pytest

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import MeshError, TopologyError
from x0tta6bl4.mesh.node import DRAIN_COST
from x0tta6bl4.mesh.sim import SimBackend
from x0tta6bl4.mesh.topology import Link, Node, Topology, ring


def converged(topology: Topology) -> SimBackend:
    sim = SimBackend(MeshSettings(backend="sim"))
    sim.up(topology)
    assert sim.run_until(sim.converged, timeout_s=3.0) is not None
    sim.run(0.2)
    return sim


def path(sim: SimBackend, src: str, dst: str) -> list[str]:
    hops = [src]
    while hops[-1] != dst and len(hops) <= len(sim.nodes):
        hops.append(sim.sinks[hops[-1]].routes[dst].next_hop)
    return hops


def advertised(sim: SimBackend, seen_by: str, origin: str, peer: str) -> float:
    entry = sim.nodes[seen_by].lsdb.get(origin)
    assert entry is not None
    return entry.links[peer]


def test_a_drain_is_flooded_at_once_and_every_node_routes_around_the_link() -> None:
    sim = converged(ring(6))
    assert path(sim, "n0", "n2") == ["n0", "n1", "n2"]
    assert path(sim, "n2", "n0") == ["n2", "n1", "n0"]
    originated = sim.nodes["n1"].counters.lsas_originated

    sim.nodes["n1"].set_link_cost("n0", math.inf)

    # Originated in the call itself, not at the next refresh; far nodes have it within
    # a few link delays (every link 0.5 ms).
    assert sim.nodes["n1"].counters.lsas_originated == originated + 1
    # Both ends keep their routes through the drained link for repair_hold_s (it still
    # forwards) while the others move at once.  Remote nodes may micro-loop for the
    # flood's sub-millisecond spread (no ordered FIB beyond the link's ends); no loop
    # outlasts it.
    sim.run(0.002)
    assert sim.sinks["n0"].routes["n2"].next_hop == "n1"  # n0 heard, and holds
    for _ in range(60):
        sim.run(0.01)
        assert sim.converged()
    for name in sim.nodes:
        assert advertised(sim, name, "n1", "n0") == DRAIN_COST
    # Afterwards nobody uses n0-n1 while another path exists.
    assert path(sim, "n0", "n2") == ["n0", "n5", "n4", "n3", "n2"]
    assert path(sim, "n2", "n0") == ["n2", "n3", "n4", "n5", "n0"]
    assert path(sim, "n1", "n0") == ["n1", "n2", "n3", "n4", "n5", "n0"]
    # Drained is not down: both ends keep the link up and confirmed.
    assert sim.nodes["n0"].monitors["n1"].up and sim.nodes["n1"].monitors["n0"].up
    assert sim.nodes["n3"].lsdb.get("n0").links["n1"] > 0  # type: ignore[union-attr]
    snap = sim.nodes["n1"].snapshot()
    assert snap.overrides == {"n0": math.inf}
    assert not snap.flagged and not sim.nodes["n3"].snapshot().flagged
    assert sim.converged()

    sim.nodes["n1"].set_link_cost("n0", None)
    sim.run(0.05)
    assert path(sim, "n0", "n2") == ["n0", "n1", "n2"]
    assert sim.nodes["n1"].snapshot().overrides == {}
    assert advertised(sim, "n4", "n1", "n0") < 2.0


def test_a_drained_link_still_carries_what_has_no_other_path() -> None:
    line = Topology([Node("a"), Node("b"), Node("c")], [Link("a", "b"), Link("b", "c")])
    sim = converged(line)
    sim.nodes["b"].set_link_cost("c", math.inf)
    sim.run(sim.settings.repair_hold_s + 0.05)
    assert path(sim, "a", "c") == ["a", "b", "c"]
    assert sim.converged()


def test_a_cost_override_raises_the_link_for_both_directions_and_is_idempotent() -> None:
    sim = converged(ring(4))
    node = sim.nodes["n0"]
    node.drain_events()
    node.set_link_cost("n1", 10.0)
    originated = node.counters.lsas_originated
    events = node.drain_events()
    node.set_link_cost("n1", 10.0)
    assert node.counters.lsas_originated == originated
    assert node.drain_events() == []
    assert [(e.kind, e.subject, e.detail) for e in events] == [("cost_override", "n1", "10")]
    sim.run(sim.settings.repair_hold_s + 0.05)
    # The graph costs a link at the larger claim: n1's view of n1-n0 is dear too.
    assert path(sim, "n1", "n0") == ["n1", "n2", "n3", "n0"]
    assert path(sim, "n0", "n1") == ["n0", "n3", "n2", "n1"]
    # Measured ETX changes do not displace the override.
    assert advertised(sim, "n2", "n0", "n1") == 10.0


def test_bad_overrides_are_refused_and_change_nothing() -> None:
    sim = converged(ring(4))
    node = sim.nodes["n0"]
    with pytest.raises(TopologyError, match="no link to 'n2'") as exc:
        node.set_link_cost("n2", 5.0)
    assert "n1" in exc.value.fix and "n3" in exc.value.fix
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(MeshError, match="must be a positive number"):
            node.set_link_cost("n1", bad)
    assert node.overrides == {}
    with pytest.raises(TopologyError):
        sim.set_link_cost("zz", "n1", 2.0)


def test_the_simulator_applies_overrides_like_the_actor() -> None:
    sim = converged(ring(5))
    sim.set_link_cost("n2", "n3", math.inf)
    sim.run(sim.settings.repair_hold_s + 0.05)
    assert path(sim, "n2", "n3") == ["n2", "n1", "n0", "n4", "n3"]
    sim.restart("n2")  # a restart forgets the override, as an actor restart does
    assert sim.nodes["n2"].overrides == {}
