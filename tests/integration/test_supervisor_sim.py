"""A fault injected in the simulated mesh becomes an incident with an action and a
checked outcome, and the mesh is healthy again afterwards."""

from __future__ import annotations

import itertools

from tests.unit.test_mapek_loop import Rig
from x0tta6bl4.mapek.ports import follow_routes
from x0tta6bl4.mesh.node import MeshNodeLogic
from x0tta6bl4.mesh.ports import Fault, FaultKind


class LiarLogic(MeshNodeLogic):
    """Modified software: claims zero-cost links to n3 and n4 that it does not have."""

    def _current_links(self) -> dict[str, float]:
        links = dict.fromkeys(super()._current_links(), 0.0)
        links.update({"n3": 0.0, "n4": 0.0})
        return links


def _paths(rig: Rig) -> list[tuple[str, ...]]:
    routes = {name: sink.routes for name, sink in rig.sim.sinks.items()}
    names = rig.topology.names
    return [follow_routes(routes, a, b).path for a in names for b in names if a != b]


async def _incident_after(rig: Rig, fault_at_tick, ticks: int):
    loop = await rig.loop()
    await rig.run(loop, 6)  # baselines learn the healthy mesh
    fault_at_tick()
    await rig.run(loop, ticks)
    rows = await rig.kb.call(lambda k: k.incidents())
    details = [await rig.kb.call(lambda k, r=r: k.incident(r.id)) for r in rows]
    await rig.kb.close()
    return rows, details


async def test_crashed_node_is_restarted(tmp_path) -> None:
    rig = Rig(tmp_path)
    rows, details = await _incident_after(
        rig, lambda: rig.sim.inject(Fault(FaultKind.NODE_CRASH, ("n5",))), 6
    )
    (row,) = rows
    assert (row.kind, row.root_cause, row.state) == ("node-down", "n5", "healed")
    assert row.action == "restart node n5" and row.success
    assert row.time_to_heal_s is not None and row.time_to_heal_s <= 3.0
    _, symptoms, actions = details[0]
    assert {s["entity"] for s in symptoms} & {"n5", "n4-n5", "n5-n6"}
    assert (
        actions[0]["state"] == "succeeded"
        and actions[0]["prediction"]["reachable_pairs_after"] == 28
    )
    assert "n5" not in rig.sim.crashed and rig.sim.converged()


async def test_lossy_link_is_avoided(tmp_path) -> None:
    """30% loss: the link stays up, degraded (at 40% the mesh's own hello accounting
    takes it down and keeps it down in the simulator: nothing left to mitigate)."""
    rig = Rig(tmp_path)
    rows, _ = await _incident_after(
        rig, lambda: rig.sim.inject(Fault(FaultKind.LOSS, ("n1", "n2"), 30.0)), 6
    )
    healed = [r for r in rows if r.root_cause == "n1-n2" and r.state == "healed"]
    assert healed and healed[0].success
    assert healed[0].action in ("raise cost of n1-n2 x10", "route around link n1-n2")
    # Traffic no longer crosses the lossy link (it is a ring link with a way around).
    for path in _paths(rig):
        crossing = {("n1", "n2"), ("n2", "n1")} & set(itertools.pairwise(path))
        assert not crossing or set(path) == {"n1", "n2"}, path


async def test_byzantine_node_is_isolated(tmp_path) -> None:
    rig = Rig(tmp_path, mesh={"byzantine_grace_s": 1.0, "byzantine": True})
    rows, _details = await _incident_after(rig, lambda: rig.sim.restart("n0", logic=LiarLogic), 6)
    byzantine = [r for r in rows if r.kind == "byzantine"]
    assert byzantine, [(r.kind, r.root_cause) for r in rows]
    row = byzantine[0]
    assert (row.root_cause, row.action, row.success) == ("n0", "isolate node n0", True)
    assert "refused as transit" in row.explanation
    for path in _paths(rig):
        assert "n0" not in path[1:-1], path
