"""The twin behind a process boundary: plain-data calls for actors and workers.

:class:`TwinService` wraps a :class:`~x0tta6bl4.twin.DigitalTwin` with calls
that take and return plain data (lists, dicts), so the same object serves
the Supervisor in a worker thread, the ``twin`` Ray actor, the SDK and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import MeshError
from x0tta6bl4.mesh.topology import Topology, generate
from x0tta6bl4.twin._twin import DEFAULT_MAX_NODES, DigitalTwin

__all__ = ["TwinService", "mesh_topology"]

log = loggers.twin


class TwinService:
    """Mirror and what-if with plain data in and out.

    Args:
        topology: the mesh as built.
        limit: longest list of pairs or links in an answer.
        max_nodes: see :class:`DigitalTwin`.
    """

    def __init__(
        self, topology: Topology, *, limit: int = 100, max_nodes: int = DEFAULT_MAX_NODES
    ) -> None:
        self.twin = DigitalTwin(topology, max_nodes=max_nodes)
        self.limit = limit

    def mirror(
        self,
        down_links: Iterable[str] = (),
        down_nodes: Iterable[str] = (),
        costs: Mapping[str, float] | None = None,
    ) -> bool:
        """Mirror the live state and precompute its trees; returns whether it changed."""
        changed = self.twin.mirror(down_links=down_links, down_nodes=down_nodes, costs=costs)
        self.twin.prepare()
        if changed:
            log.info("twin_mirrored", **self.twin.state().to_dict())
        return changed

    def evaluate(self, scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``what_if(**scenario).to_dict()`` of each scenario."""
        return [self.twin.what_if(**scenario).to_dict(self.limit) for scenario in scenarios]

    def what_if(self, **scenario: Any) -> dict[str, Any]:
        return self.twin.what_if(**scenario).to_dict(self.limit)

    def state(self) -> dict[str, Any]:
        return {"nodes": len(self.twin.topology), **self.twin.state().to_dict()}


def mesh_topology(settings: Settings, path: Path | None = None) -> tuple[Topology, str]:
    """The topology to ask about, and where it came from: ``path``, the newest netns
    mesh run under ``data_dir``, or the one the ``mesh`` settings generate."""
    if path is not None:
        return Topology.load(path), str(path)
    from x0tta6bl4.mesh.netns import NetnsBackend

    try:
        backend = NetnsBackend.attach(settings.data_dir)
    except MeshError:
        backend = None
    if backend is not None and backend.topology is not None:
        return backend.topology, f"mesh run {backend.run_id}"
    m = settings.mesh
    return generate(m.topology, m.nodes, seed=m.seed), f"generated {m.topology} x{m.nodes}"
