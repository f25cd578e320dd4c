"""A node that restarts forgets what the Supervisor set on it; the port sets it again.

The mesh is the real in-process simulator (its restart is a MeshNode actor's:
new control logic, routes adopted, operator state gone).
"""

from __future__ import annotations

import math

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.mapek._types import Action, ActionKind
from x0tta6bl4.mapek.ports import SUPERVISOR_REASON, SimMeshPort
from x0tta6bl4.mesh.sim import SimBackend
from x0tta6bl4.mesh.topology import ring_chords


def _port() -> SimMeshPort:
    sim = SimBackend(MeshSettings(backend="sim", byzantine=False), seed=3)
    sim.up(ring_chords(8))
    assert sim.run_until(sim.converged, 30, 0.1) is not None
    return SimMeshPort(sim)


def _refuses(port: SimMeshPort, node: str, target: str) -> bool:
    return SUPERVISOR_REASON in port.sim.nodes[node].snapshot().flagged.get(target, [])


async def test_a_restarted_node_is_told_again_whom_to_isolate() -> None:
    port = _port()
    await port.apply(Action(ActionKind.ISOLATE_NODE, "n5"))
    others = [n for n in port.sim.nodes if n != "n5"]
    assert all(_refuses(port, n, "n5") for n in others)

    port.sim.restart("n4")
    port.sim.run(1.0)
    assert not _refuses(port, "n4", "n5")  # the new logic knows nothing of it
    assert port.standing.lost_isolations(
        {n: port.sim.nodes[n].snapshot() for n in port.sim.nodes}
    ) == [("n4", "n5")]

    flagged = await port.flagged()  # once a tick: re-applies first
    assert all(_refuses(port, n, "n5") for n in others)
    assert "n5" not in flagged  # the Supervisor's own isolation is not a Byzantine flag
    port.sim.run(2.0)
    routes = port.sim.nodes["n4"].snapshot().routes
    assert all(r.next_hop != "n5" for d, r in routes.items() if d != "n5")


async def test_a_restarted_node_gets_its_link_costs_again() -> None:
    port = _port()
    a, b = port.sim.topology.links[0].ends
    await port.apply(Action(ActionKind.ROUTE_AROUND_LINK, f"{a}-{b}"))
    port.sim.restart(a)
    assert port.sim.nodes[a].snapshot().overrides == {}
    await port.flagged()
    assert port.sim.nodes[a].snapshot().overrides == {b: math.inf}
    assert port.sim.nodes[b].snapshot().overrides == {a: math.inf}
    assert port.standing.lost_costs({a: port.sim.nodes[a].snapshot()}) == []
