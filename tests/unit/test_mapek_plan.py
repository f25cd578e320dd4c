"""Plan: candidates evaluated in the real twin, picked by restored reachability,
least disruption and measured effectiveness."""

from __future__ import annotations

from x0tta6bl4.mapek._types import ActionKind, Diagnosis, DiagnosisKind, MeshView
from x0tta6bl4.mapek.plan import Planner
from x0tta6bl4.mapek.ports import SimMeshPort
from x0tta6bl4.mapek.twin_port import LocalTwin
from x0tta6bl4.mesh.topology import Link, Node, Topology, ring, ring_chords
from x0tta6bl4.twin import TwinService


async def inline(fn, *args):
    return fn(*args)


async def _plan(topo, diagnosis, view=None, effectiveness=None, exclude=()):
    view = view or MeshView()
    twin = LocalTwin(TwinService(topo), inline)
    await twin.mirror(view, {})
    planner = Planner(twin, SimMeshPort.supports, topo)
    return await planner.plan(diagnosis, view, effectiveness or {}, exclude)


def _keys(plan):
    return {c.action.key: c for c in plan.candidates}


def _lollipop() -> Topology:
    """A ring a-b-c-d with a tail d-e: d-e is a bridge."""
    nodes = [Node(n) for n in "abcde"]
    links = [Link("a", "b"), Link("b", "c"), Link("c", "d"), Link("a", "d"), Link("d", "e")]
    return Topology(nodes, links)


async def test_lossy_ring_link_is_avoided_and_a_bridge_is_not_cut() -> None:
    plan = await _plan(_lollipop(), Diagnosis(DiagnosisKind.LINK_DEGRADED, "a-b", 0.9, "loss"))
    cands = _keys(plan)
    assert set(cands) == {"do-nothing:", "raise-cost:a-bx10", "route-around-link:a-b"}
    assert plan.chosen.action.kind in (ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK)
    assert plan.chosen.benefit > 0 and plan.chosen.score > 0
    bridge = await _plan(_lollipop(), Diagnosis(DiagnosisKind.LINK_DEGRADED, "d-e", 0.9, "loss"))
    cands = _keys(bridge)
    # A drained link still carries what nothing else reaches: draining or raising the
    # only link to e keeps every route to e on it, so neither helps.
    drained = cands["route-around-link:d-e"]
    after = drained.prediction
    assert drained.benefit == 0 and after["lost_pairs"] == 0
    assert after["impaired_routes_after"] == after["impaired_routes_before"]
    assert bridge.chosen.action.kind is ActionKind.DO_NOTHING


async def test_measured_effectiveness_decides_between_equal_predictions() -> None:
    diagnosis = Diagnosis(DiagnosisKind.LINK_DEGRADED, "n0-n1", 0.9, "loss")
    good_raise = {("raise-cost", "link-degraded"): 0.9, ("route-around-link", "link-degraded"): 0.1}
    plan = await _plan(ring(6), diagnosis, effectiveness=good_raise)
    assert plan.chosen.action.kind is ActionKind.RAISE_COST
    good_drain = {("raise-cost", "link-degraded"): 0.1, ("route-around-link", "link-degraded"): 0.9}
    plan = await _plan(ring(6), diagnosis, effectiveness=good_drain)
    assert plan.chosen.action.kind is ActionKind.ROUTE_AROUND_LINK
    assert plan.chosen.effectiveness == 0.9


async def test_down_node_is_restarted_with_its_links() -> None:
    topo = ring_chords(8)
    links = {link.key for link in topo.links if "n3" in link.ends}
    view = MeshView(down_nodes=frozenset({"n3"}), down_links=frozenset(links))
    plan = await _plan(topo, Diagnosis(DiagnosisKind.NODE_DOWN, "n3", 0.9, "silent"), view)
    assert plan.chosen.action.key == "restart-node:n3"
    assert plan.chosen.prediction["reachable_pairs_after"] == 28
    assert plan.chosen.benefit > 0.2


async def test_a_node_down_before_the_view_shows_it_is_restarted() -> None:
    """The node says none of its links is up; its neighbours have not timed them out."""
    topo = ring_chords(8)
    plan = await _plan(topo, Diagnosis(DiagnosisKind.NODE_DOWN, "n3", 0.85, "no links"))
    nothing = _keys(plan)["do-nothing:"].prediction
    assert nothing["reachable_pairs_after"] == 21  # n3 cut off: 7 * 6 / 2 pairs left
    assert plan.chosen.action.key == "restart-node:n3" and plan.chosen.benefit > 0.2


async def test_byzantine_node_is_isolated() -> None:
    plan = await _plan(ring_chords(8), Diagnosis(DiagnosisKind.BYZANTINE, "n2", 0.9, "flags"))
    assert plan.chosen.action.key == "isolate-node:n2"
    assert plan.chosen.prediction["impaired_routes_after"] == 0


async def test_tried_actions_are_excluded_and_nothing_left_is_none() -> None:
    diagnosis = Diagnosis(DiagnosisKind.LINK_DOWN, "n0-n1", 1.0, "down")
    view = MeshView(down_links=frozenset({"n0-n1"}))
    plan = await _plan(ring(6), diagnosis, view)
    assert [c.action.key for c in plan.candidates] == ["do-nothing:"]
    assert await _plan(ring(6), diagnosis, view, exclude={"do-nothing:"}) is None


async def test_a_flapping_link_is_judged_as_it_is_when_it_comes_back() -> None:
    """A lossy link that was down for this whole window (it flaps) still gets its cost
    raised or is drained: with it back up, routes over it are impaired again."""
    topo = ring_chords(5)
    diagnosis = Diagnosis(DiagnosisKind.LINK_DEGRADED, "n1-n2", 0.9, "loss")
    flapping = await _plan(topo, diagnosis, view=MeshView(down_links=frozenset({"n1-n2"})))
    assert flapping.chosen.action.kind in (ActionKind.RAISE_COST, ActionKind.ROUTE_AROUND_LINK)
    assert flapping.chosen.benefit > 0
    # Doing nothing brings the link back with routes over it; the remedy keeps them off.
    nothing = _keys(flapping)["do-nothing:"].prediction
    assert nothing["impaired_routes_after"] > 0
    assert flapping.chosen.prediction["impaired_routes_after"] == 0
    # A link that is down (not degraded) is left to the mesh's own repair.
    down = Diagnosis(DiagnosisKind.LINK_DOWN, "n1-n2", 0.9, "down")
    plan = await _plan(topo, down, view=MeshView(down_links=frozenset({"n1-n2"})))
    assert set(_keys(plan)) == {"do-nothing:"}
