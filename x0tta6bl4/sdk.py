"""Python SDK: ``mesh = x0tta6bl4.connect()`` and script the platform.

The :class:`Mesh` handle is the one door for scripts; each capability adds
its part of the handle (topology, faults, incidents, what-if, payments) as it
lands.  Example::

    import x0tta6bl4 as x0

    with x0.connect() as mesh:          # starts a local Ray, or joins `address`
        print(mesh.info.dashboard_url)
        print(mesh.actors())            # named actors in the x0tta6bl4 namespace
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from x0tta6bl4.actors.runtime import RayInfo, ensure_ray, shutdown_ray
from x0tta6bl4.config import Settings, load_settings
from x0tta6bl4.errors import ClusterError, MeshError
from x0tta6bl4.mesh.topology import Topology

if TYPE_CHECKING:
    from x0tta6bl4.actors.ebpf_app import EbpfView
    from x0tta6bl4.payments import PaymentService

__all__ = ["Mesh", "TwinHandle", "connect"]


class Mesh:
    """A connection to an x0tta6bl4 deployment on Ray."""

    def __init__(self, settings: Settings, info: RayInfo) -> None:
        self.settings = settings
        self.info = info
        self._payments: PaymentService | None = None

    def actors(self) -> list[str]:
        """Names of the live named actors in this deployment's namespace, sorted."""
        import ray

        rows = ray.util.list_named_actors(all_namespaces=True)
        return sorted(r["name"] for r in rows if r["namespace"] == self.info.namespace)

    def rca(
        self, metrics: Any, graph: Any = None, anomaly_start: Any = None, top: int = 3
    ) -> dict[str, Any]:
        """Root causes of the anomaly in ``metrics`` (a DataFrame of ``"<entity>:<metric>"``
        columns), explained; asks the running Trainer actor, or analyzes here when none runs.

        Returns ``{"model_version", "anomaly_start", "anomalous", "root_causes": [...]}``.
        """
        import ray

        from x0tta6bl4.actors.trainer import TRAINER_NAME

        try:
            trainer = ray.get_actor(TRAINER_NAME, namespace=self.info.namespace)
        except ValueError:
            from x0tta6bl4.ml.service import RcaService

            return RcaService(self.settings.ml, self.settings.data_dir).infer(
                metrics, graph, anomaly_start, top
            )
        answer: Any = ray.get(trainer.infer.remote(metrics, graph, anomaly_start, top))
        return cast(dict[str, Any], answer)

    @property
    def payments(self) -> PaymentService:
        """Orders and on-chain payment verification (an async API).

        Talks to the running Ledger actor when ``payments.enabled`` brought one
        up, else opens the payments database in this process::

            order = await mesh.payments.create_order("tg:1", "node", Currency.TON, 2 * 10**9)
            order = await mesh.payments.check(order.id)
        """
        if self._payments is None:
            import ray

            from x0tta6bl4.actors.ledger import LEDGER_NAME, remote_ledger
            from x0tta6bl4.payments import PaymentService, ledger_db_path

            try:
                handle = ray.get_actor(LEDGER_NAME, namespace=self.info.namespace)
            except ValueError:
                db = ledger_db_path(self.settings)
                self._payments = PaymentService(self.settings.payments, db)
            else:
                ledger = remote_ledger(handle)
                self._payments = PaymentService(self.settings.payments, ledger=ledger)
        return self._payments

    @property
    def topology(self) -> Topology:
        """The topology of the running netns mesh (the newest run under ``data_dir``)."""
        from x0tta6bl4.mesh.netns import NetnsBackend

        backend = NetnsBackend.attach(self.settings.data_dir)
        if backend.topology is None:
            raise MeshError("the mesh run has no topology recorded")
        return backend.topology

    def fault(
        self, kind: str, *targets: str, value: str | float | None = None, run: str | None = None
    ) -> str:
        """Inject a reversible fault into the running mesh; returns its id for :meth:`heal`.

        ``mesh.fault("link-down", "n1", "n2")``, ``mesh.fault("loss", "n1", "n2", value="30%")``,
        ``mesh.fault("node-crash", "n3")``, ``mesh.fault("partition", "n1", "n2")``.
        """
        from x0tta6bl4.actors.mesh_app import inject_fault
        from x0tta6bl4.mesh.faults import parse_fault

        return inject_fault(self.settings, parse_fault(kind, list(targets), value), run)

    def set_link_cost(self, a: str, b: str, cost: float | None, *, run: str | None = None) -> None:
        """Override the cost of link ``a-b`` at both ends of the running mesh: a number,
        ``math.inf`` to drain it (used only where nothing else reaches), None to clear."""
        from x0tta6bl4.actors.mesh_app import set_link_cost

        set_link_cost(self.settings, a, b, cost, run, namespace=self.info.namespace)

    def heal(self, fault_id: str | None = None, *, run: str | None = None) -> list[str]:
        """Undo one fault by id, or every active fault; returns the ids healed."""
        from x0tta6bl4.actors.mesh_app import heal_faults

        return heal_faults(self.settings, fault_id, run)

    @property
    def ebpf(self) -> EbpfView:
        """Kernel telemetry: ``mesh.ebpf.status()``, ``mesh.ebpf.latest()`` (TelemetryBatches)."""
        from x0tta6bl4.actors.ebpf_app import EbpfView

        return EbpfView(self.info.namespace)

    @property
    def twin(self) -> TwinHandle:
        """The digital twin: ``mesh.twin.what_if(fail_links=["n1-n2"])``."""
        return TwinHandle(self)

    def storefront(self) -> dict[str, Any]:
        """Status of the running Telegram storefront (mode, bot, ledger, counters).

        Raises :class:`ClusterError` when no ``Storefront`` actor runs
        (start it with ``storefront.enabled``, or use ``x0tta6bl4 bot``).
        """
        import ray

        from x0tta6bl4.actors.storefront import STOREFRONT_NAME

        try:
            actor = ray.get_actor(STOREFRONT_NAME, namespace=self.info.namespace)
        except ValueError:
            raise ClusterError(
                "no Storefront actor runs in this deployment",
                fix="run with --set storefront.enabled=true, or use `x0tta6bl4 bot`",
            ) from None
        return cast(dict[str, Any], ray.get(actor.status.remote(), timeout=10))

    def incidents(self, limit: int = 20) -> list[dict[str, Any]]:
        """The Supervisor's newest incidents (symptom, root cause, action, outcome,
        time to heal), read from its Knowledge file."""
        from dataclasses import asdict

        from x0tta6bl4.mapek.assemble import knowledge_path
        from x0tta6bl4.mapek.knowledge import Knowledge

        path = knowledge_path(self.settings)
        if not path.exists():
            return []
        kb = Knowledge(path)
        try:
            return [{**asdict(r), "time_to_heal_s": r.time_to_heal_s} for r in kb.incidents(limit)]
        finally:
            kb.close()

    def close(self) -> None:
        """Disconnect; a local Ray started by :func:`connect` is stopped."""
        if self.info.started_here:
            shutdown_ray()

    def __enter__(self) -> Mesh:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Mesh(address={self.info.address!r}, namespace={self.info.namespace!r})"


class TwinHandle:
    """``mesh.twin``: what-if questions.  The live ``twin`` actor answers when the
    Supervisor runs (its twin mirrors the live link state); otherwise a twin of the
    mesh's topology is built here."""

    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh

    def what_if(
        self,
        fail_links: Sequence[str] = (),
        fail_nodes: Sequence[str] = (),
        traffic: Mapping[tuple[str, str], float] | None = None,
    ) -> dict[str, Any]:
        """Predict a failure: ``links_affected``, ``lost_pairs``, ``changed_pairs`` (with
        cost deltas), ``partitions_created``, ``load_shift`` (see
        :class:`~x0tta6bl4.twin.WhatIfResult`)."""
        import ray

        from x0tta6bl4.actors.twin import TWIN_NAME
        from x0tta6bl4.twin import TwinService, mesh_topology

        scenario = {
            "fail_links": list(fail_links),
            "fail_nodes": list(fail_nodes),
            "traffic": traffic,
        }
        try:
            actor = ray.get_actor(TWIN_NAME, namespace=self.mesh.info.namespace)
        except ValueError:
            topology, _source = mesh_topology(self.mesh.settings)
            return TwinService(topology).what_if(**scenario)
        return cast(dict[str, Any], ray.get(actor.what_if.remote(scenario)))


def connect(
    address: str | None = None,
    *,
    settings: Settings | None = None,
    config_file: Path | str | None = None,
) -> Mesh:
    """Start or attach to Ray and return a :class:`Mesh` handle.

    Args:
        address: a running cluster (``auto``, ``ray://head:10001``); None uses
            ``ray.address`` from the configuration, and starts a local Ray when
            that is unset too.
        settings: use these settings instead of loading them.
        config_file: a TOML/YAML file to load settings from.
    """
    settings = settings or load_settings(config_file)
    info = ensure_ray(settings.ray, address)
    return Mesh(settings, info)
