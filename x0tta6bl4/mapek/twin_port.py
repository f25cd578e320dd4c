"""The planner's twin in this process, its calls run through an offload function."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from x0tta6bl4.mapek._types import MeshView
from x0tta6bl4.mapek.plan import Scenario
from x0tta6bl4.twin import TwinService

__all__ = ["LocalTwin", "Offload"]

T = TypeVar("T")
Offload = Callable[..., Awaitable[Any]]
"""``await offload(fn, *args)``: where blocking work runs (default: a worker thread)."""


class LocalTwin:
    """A :class:`~x0tta6bl4.mapek.plan.TwinPort` over a :class:`TwinService`.

    scipy's shortest paths hold the GIL, so on a loop that must stay responsive
    with a large mesh use the ``twin`` actor instead (another process).
    """

    def __init__(self, service: TwinService, offload: Offload | None = None) -> None:
        self.service = service
        self.offload: Offload = offload or asyncio.to_thread

    async def mirror(self, view: MeshView, costs: Mapping[str, float]) -> None:
        await self.offload(
            self.service.mirror, sorted(view.down_links), sorted(view.down_nodes), dict(costs)
        )

    async def evaluate(self, scenarios: Sequence[Scenario]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.offload(self.service.evaluate, list(scenarios))
        return result
