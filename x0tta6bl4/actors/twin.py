"""The ``twin`` actor: the digital twin in its own process.

A thin Ray wrapper over :class:`~x0tta6bl4.twin.TwinService`.  The Supervisor
mirrors the live state into it and evaluates its plans there: scipy's
shortest paths hold the GIL for as long as they run, so in the Supervisor's
own process they would stall its event loop.  The SDK and ``x0tta6bl4 twin
what-if`` ask it too when it runs, so their answers reflect the live state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray.actor import ActorHandle

from x0tta6bl4.mapek._types import MeshView
from x0tta6bl4.mapek.plan import Scenario
from x0tta6bl4.mesh.topology import Topology
from x0tta6bl4.twin import TwinService

__all__ = ["TWIN_NAME", "RemoteTwin", "TwinActor", "spawn_twin"]

TWIN_NAME = "twin"


class TwinActor:
    """Holds one :class:`TwinService`; every call is plain data in and out."""

    def __init__(self, topology: dict[str, Any], max_nodes: int) -> None:
        self.service = TwinService(Topology.from_dict(topology), max_nodes=max_nodes)

    def mirror(self, down_links: list[str], down_nodes: list[str], costs: dict[str, float]) -> bool:
        return self.service.mirror(down_links, down_nodes, costs)

    def evaluate(self, scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.service.evaluate(scenarios)

    def what_if(self, scenario: dict[str, Any]) -> dict[str, Any]:
        return self.service.what_if(**scenario)

    def state(self) -> dict[str, Any]:
        return self.service.state()

    def topology(self) -> dict[str, Any]:
        return self.service.twin.topology.to_dict()


def spawn_twin(
    topology: Topology, max_nodes: int, namespace: str | None = None
) -> ActorHandle[Any]:
    """The named twin actor (a running one is reused)."""
    options: dict[str, Any] = {"name": TWIN_NAME, "get_if_exists": True, "num_cpus": 0}
    if namespace is not None:
        options["namespace"] = namespace
    actor = ray.remote(TwinActor).options(**options)
    handle: ActorHandle[Any] = actor.remote(topology.to_dict(), max_nodes)  # type: ignore[assignment]
    return handle


class RemoteTwin:
    """The planner's :class:`~x0tta6bl4.mapek.plan.TwinPort` over the twin actor."""

    def __init__(self, handle: ActorHandle[Any]) -> None:
        self.handle = handle

    async def mirror(self, view: MeshView, costs: Mapping[str, float]) -> None:
        await self.handle.mirror.remote(
            sorted(view.down_links), sorted(view.down_nodes), dict(costs)
        )

    async def evaluate(self, scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.handle.evaluate.remote(list(scenarios))
        return result
