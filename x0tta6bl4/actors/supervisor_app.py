"""The ``supervisor`` component of the app (``supervisor.enabled``).

Starts the detached Supervisor actor (which starts the ``twin`` actor) and,
on teardown, kills both: a detached actor outlives its driver unless killed.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.actors.supervisor import SUPERVISOR_NAME, spawn_supervisor
from x0tta6bl4.actors.twin import TWIN_NAME
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError

__all__ = ["SupervisorComponent"]

log = loggers.supervisor
_STATUS_TIMEOUT_S = 10.0


class SupervisorComponent:
    """Runs the Supervisor for the app's lifetime."""

    name = "supervisor"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handle: ActorHandle[Any] | None = None
        self.namespace: str | None = None

    def start(self, ray_info: RayInfo) -> None:
        self.namespace = ray_info.namespace
        self.handle = spawn_supervisor(self.settings, namespace=ray_info.namespace)

    def status(self) -> dict[str, Any]:
        if self.handle is None:
            return {}
        try:
            ref: ray.ObjectRef[dict[str, Any]] = self.handle.status.remote()
            report = ray.get(ref, timeout=_STATUS_TIMEOUT_S)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            raise ClusterError(f"the Supervisor does not answer: {exc}") from exc
        return {
            "samples_per_s": round(report["ingest"]["samples_per_s"]),
            "lag_p99_ms": round(report["loop_lag"]["p99_ms"], 2),
            "open_incidents": report["knowledge"]["open_incidents"],
            "dropped": report["queue"]["dropped"],
        }

    def stop(self) -> None:
        """Kill the Supervisor and the twin (idempotent)."""
        if self.handle is not None:
            try:
                ray.get(self.handle.stop.remote(), timeout=_STATUS_TIMEOUT_S)
            except (ray.exceptions.RayError, TimeoutError) as exc:
                log.warning("supervisor_stop_failed", error=str(exc))
            self.handle = None
        for name in (SUPERVISOR_NAME, TWIN_NAME):
            try:
                actor = ray.get_actor(name, namespace=self.namespace)
            except ValueError:
                continue
            ray.kill(actor, no_restart=True)
