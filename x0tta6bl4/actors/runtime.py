"""Start or join Ray the same way everywhere: CLI, SDK, tests and benchmarks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from x0tta6bl4 import loggers
from x0tta6bl4.config import RaySettings
from x0tta6bl4.errors import ClusterError

__all__ = ["RayInfo", "auth_token_path", "ensure_ray", "shutdown_ray"]

log = loggers.ops

# Remembered from ``ray.init`` because Ray offers no public getter for it later.
_state: dict[str, str | None] = {}


@dataclass(frozen=True)
class RayInfo:
    """What a caller needs to know about the Ray it is connected to."""

    address: str
    dashboard_url: str | None
    namespace: str
    started_here: bool
    auth_mode: str
    resources: dict[str, float]

    @property
    def gpus(self) -> float:
        return self.resources.get("GPU", 0.0)


def auth_token_path() -> Path:
    """Where Ray 2.60 keeps the cluster token it generates on first start."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))


def ensure_ray(settings: RaySettings | None = None, address: str | None = None) -> RayInfo:
    """Connect to Ray, starting a local instance with the dashboard when needed.

    Args:
        settings: the ``ray`` section of the configuration (defaults when None).
        address: overrides ``settings.address``; None starts a local Ray, any
            other value joins that cluster (``auto``, ``ray://host:10001``).

    Token auth is Ray 2.60's default: a local start writes the token to
    :func:`auth_token_path`; set ``RAY_AUTH_MODE=disabled`` to opt out (tests
    do).  Re-entrant: an existing connection is reused.
    """
    settings = settings or RaySettings()
    address = address if address is not None else settings.address
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "namespace": settings.namespace,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if address is None:
            kwargs.update(
                include_dashboard=settings.dashboard,
                dashboard_host="127.0.0.1",
                dashboard_port=settings.dashboard_port,
                num_cpus=settings.num_cpus,
            )
            started_here = True
        else:
            kwargs["address"] = address
        try:
            context = ray.init(**kwargs)
        # Ray raises a bare Exception when a local node times out during start-up.
        except Exception as exc:
            ray.shutdown()
            raise ClusterError(
                f"could not {'start' if address is None else 'join'} Ray"
                f"{'' if address is None else ' at ' + address}: {exc}",
                fix="check `ray status`; with token auth set RAY_AUTH_MODE=token and the "
                f"token in {auth_token_path()} or RAY_AUTH_TOKEN",
            ) from exc
        _state["dashboard_url"] = _as_url(context.dashboard_url)
    ctx = ray.get_runtime_context()
    info = RayInfo(
        address=ctx.gcs_address,
        dashboard_url=_state.get("dashboard_url"),
        namespace=ctx.namespace,
        started_here=started_here,
        auth_mode=os.environ.get("RAY_AUTH_MODE", "token"),
        resources=dict(ray.cluster_resources()),  # type: ignore[no-untyped-call]
    )
    log.info(
        "ray_ready",
        address=info.address,
        dashboard=info.dashboard_url,
        started_here=started_here,
        auth_mode=info.auth_mode,
    )
    return info


def shutdown_ray() -> None:
    """Disconnect, stopping the local Ray if this process started it."""
    if ray.is_initialized():
        ray.shutdown()
    _state.clear()


def _as_url(address: str | None) -> str | None:
    if not address:
        return None
    return address if address.startswith("http") else f"http://{address}"
