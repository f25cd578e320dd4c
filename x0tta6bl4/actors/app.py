"""The one app: start what the feature flags enable, report it, tear it down.

Each capability plugs in as a :class:`Component` listed in :data:`COMPONENTS`
with the flag that enables it.  ``x0tta6bl4 run`` and the SDK both drive
:class:`App`; there are no variants of the app, only flags.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from x0tta6bl4 import loggers
from x0tta6bl4.actors.runtime import RayInfo, ensure_ray, shutdown_ray
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import X0Error

__all__ = ["COMPONENTS", "App", "Component", "ComponentState"]

log = loggers.app


class Component(Protocol):
    """One capability of the running app.

    ``start`` may raise :class:`X0Error`; ``stop`` is idempotent and must leave
    nothing behind (namespaces, routes, BPF programs, processes, actors).
    """

    name: str

    def start(self, ray_info: RayInfo) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def stop(self) -> None: ...


ComponentFactory = Callable[[Settings], Component]


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    flag: str
    """Dotted settings key of the boolean that enables the component."""
    factory: str
    """``module:callable`` taking Settings and returning a Component; imported lazily."""

    def enabled(self, settings: Settings) -> bool:
        value: Any = settings
        for part in self.flag.split("."):
            value = getattr(value, part)
        return bool(value)

    def load(self) -> ComponentFactory:
        module_name, _, attr = self.factory.partition(":")
        factory: ComponentFactory = getattr(importlib.import_module(module_name), attr)
        return factory


COMPONENTS: list[ComponentSpec] = [
    ComponentSpec("metrics", "metrics.enabled", "x0tta6bl4.ops.metrics:MetricsExporter"),
    ComponentSpec(
        "supervisor", "supervisor.enabled", "x0tta6bl4.actors.supervisor_app:SupervisorComponent"
    ),
    ComponentSpec("mesh", "mesh.enabled", "x0tta6bl4.actors.mesh_app:MeshComponent"),
    ComponentSpec("ebpf", "ebpf.enabled", "x0tta6bl4.actors.ebpf_app:EbpfComponent"),
    ComponentSpec(
        "payments", "payments.enabled", "x0tta6bl4.actors.payments_app:PaymentsComponent"
    ),
    ComponentSpec(
        "storefront", "storefront.enabled", "x0tta6bl4.actors.storefront_app:StorefrontComponent"
    ),
    ComponentSpec("trainer", "ml.enabled", "x0tta6bl4.actors.trainer:TrainerComponent"),
]


@dataclass
class ComponentState:
    name: str
    state: str  # "off" (flag), "running", "failed", "stopped"
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class App:
    """Brings up the enabled components on Ray and takes them down again."""

    def __init__(
        self,
        settings: Settings,
        address: str | None = None,
        only: Collection[str] | None = None,
    ) -> None:
        """``only`` limits the app to these components (``mesh up`` runs just the mesh)."""
        self.settings = settings
        self.address = address
        self.only = None if only is None else frozenset(only)
        self.ray_info: RayInfo | None = None
        self.started_at: float | None = None
        self._running: list[Component] = []
        self._states: dict[str, ComponentState] = {}

    def start(self, on_progress: Callable[[str], None] | None = None) -> None:
        """Start Ray, then every enabled component in order.

        A component that fails to start is recorded as failed and the others
        still start: one broken capability does not take the platform down.
        """
        notify = on_progress or (lambda _msg: None)
        notify("starting Ray")
        self.ray_info = ensure_ray(self.settings.ray, self.address)
        self.started_at = time.monotonic()
        for spec in COMPONENTS:
            if self.only is not None and spec.name not in self.only:
                continue
            if not spec.enabled(self.settings):
                self._states[spec.name] = ComponentState(spec.name, "off")
                continue
            notify(f"starting {spec.name}")
            try:
                component = spec.load()(self.settings)
                component.start(self.ray_info)
            except X0Error as exc:
                log.error("component_failed", component=spec.name, error=str(exc), **exc.context)
                self._states[spec.name] = ComponentState(spec.name, "failed", error=str(exc))
                continue
            self._running.append(component)
            self._states[spec.name] = ComponentState(spec.name, "running")
            log.info("component_started", component=spec.name)

    def status(self) -> list[ComponentState]:
        for component in self._running:
            state = self._states[component.name]
            try:
                state.detail = component.status()
            except X0Error as exc:
                state.error = str(exc)
        return list(self._states.values())

    def stop(self) -> None:
        """Stop components in reverse order, then Ray if this process started it."""
        while self._running:
            component = self._running.pop()
            try:
                component.stop()
                self._states[component.name].state = "stopped"
            except Exception:
                log.exception("component_stop_failed", component=component.name)
                self._states[component.name].state = "failed"
        if self.ray_info is not None and self.ray_info.started_here:
            shutdown_ray()
        self.ray_info = None

    def __enter__(self) -> App:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
