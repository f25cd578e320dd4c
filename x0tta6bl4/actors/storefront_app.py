"""The ``storefront`` component of the app: the named ``Storefront`` actor.

Enabled by ``storefront.enabled``.  Listed after ``payments`` in the app, so
the bot finds the Ledger actor when payments run on Ray too.
"""

from __future__ import annotations

from typing import Any, cast

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.actors.storefront import STOREFRONT_NAME, StorefrontActor
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError, X0Error

__all__ = ["StorefrontComponent"]

log = loggers.bot

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0


class StorefrontComponent:
    """Starts, reports and stops the Storefront actor."""

    name = "storefront"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.actor: ActorHandle[Any] | None = None

    def start(self, ray_info: RayInfo) -> None:
        actor: ActorHandle[Any] = StorefrontActor.options(  # type: ignore[attr-defined]
            name=STOREFRONT_NAME, namespace=ray_info.namespace
        ).remote(self.settings, ray_info.namespace)
        try:
            report = cast(dict[str, Any], ray.get(actor.start.remote(), timeout=_START_TIMEOUT_S))
        except ray.exceptions.RayError as exc:
            ray.kill(actor)
            raise ClusterError(
                f"the Storefront actor failed while starting: {exc}",
                fix="see the Storefront actor's log in the Ray dashboard",
            ) from exc
        if "error" in report:
            ray.get(actor.stop.remote(), timeout=_STOP_TIMEOUT_S)
            ray.kill(actor)
            raise X0Error(report["message"], fix=report["fix"], kind=report["error"])
        self.actor = actor
        log.info("storefront_component_started", **report)

    def status(self) -> dict[str, Any]:
        if self.actor is None:
            return {}
        try:
            detail = cast(dict[str, Any], ray.get(self.actor.status.remote(), timeout=10))
        except ray.exceptions.RayError as exc:
            raise ClusterError(f"the Storefront actor does not answer: {exc}") from exc
        return detail

    def stop(self) -> None:
        """Stop the bot and remove the actor; idempotent."""
        if self.actor is None:
            return
        actor, self.actor = self.actor, None
        try:
            ray.get(actor.stop.remote(), timeout=_STOP_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            log.error("storefront_stop_failed", error=str(exc))
        finally:
            ray.kill(actor)
