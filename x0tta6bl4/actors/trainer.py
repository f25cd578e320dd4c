"""The Trainer actor: trains RCA models and serves root-cause inference.

A thin Ray wrapper over :class:`~x0tta6bl4.ml.service.RcaService`.  It is
named ``trainer`` in the deployment's namespace, asks for ``num_gpus=1`` when
the cluster has a GPU (and ``ml.device`` is not ``cpu``) and trains on the
CPU otherwise.  Two calls may run at once, so inference keeps answering while
a training run is in progress.  The Supervisor calls, from its event loop::

    trainer = ray.get_actor("trainer", namespace=...)
    result = await trainer.infer.remote(metrics_frame, edges, anomaly_start)
    # {"model_version", "anomaly_start", "anomalous": [...],
    #  "root_causes": [{"entity", "kind", "score", "explanation": {..., "text"}}]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import ClusterError, ConfigError

__all__ = ["TRAINER_NAME", "TrainerActor", "TrainerComponent", "spawn_trainer", "trainer_options"]

log = loggers.ml
TRAINER_NAME = "trainer"
_READY_TIMEOUT_S = 120.0


class TrainerActor:
    """Owns the model registry; trains on request and answers inference calls."""

    def __init__(self, settings: Settings) -> None:
        import torch

        from x0tta6bl4.ml.service import RcaService

        gpu_ids = ray.get_gpu_ids() if ray.is_initialized() else []
        wants = settings.ml.device
        if wants == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "ml.device is cuda but the Trainer actor sees no GPU",
                fix="set ml.device=auto (or cpu), or give the cluster a GPU",
            )
        device = "cuda" if wants != "cpu" and gpu_ids and torch.cuda.is_available() else "cpu"
        self.service = RcaService(settings.ml, settings.data_dir, device)
        log.info("trainer_ready", device=device, registry=str(self.service.registry.root))

    def train(
        self, quick: bool = False, dataset_dir: str | None = None, epochs: int | None = None
    ) -> dict[str, Any]:
        """Train (on fresh twin cases, or a dataset directory) and make the model current."""
        from x0tta6bl4.ml.scenarios.dataset import read_dataset

        cases = read_dataset(dataset_dir) if dataset_dir else None
        return self.service.train(quick=quick, cases=cases, epochs=epochs)

    def infer(
        self,
        metrics: pd.DataFrame,
        graph: Any = None,
        anomaly_start: Any = None,
        top: int | None = None,
        explain: bool = True,
    ) -> dict[str, Any]:
        """Root causes with explanations for one anomaly (see the module docstring)."""
        return self.service.infer(metrics, graph, anomaly_start, top, explain)

    def rank(
        self, metrics: pd.DataFrame, graph: Any = None, anomaly_start: Any = None
    ) -> list[tuple[str, float]]:
        """Every entity with its anomaly score, most likely root cause first."""
        return [
            (r.entity, r.score) for r in self.service.analyzer().rank(metrics, graph, anomaly_start)
        ]

    def infer_case(self, directory: str, top: int | None = None) -> dict[str, Any]:
        return self.service.infer_case(Path(directory), top)

    def status(self) -> dict[str, Any]:
        return self.service.status()


def trainer_options(settings: Settings, resources: dict[str, float]) -> dict[str, Any]:
    """Ray options of the Trainer: one GPU where the cluster has one, else CPU only."""
    gpus = 1 if resources.get("GPU", 0) >= 1 and settings.ml.device != "cpu" else 0
    return {
        "name": TRAINER_NAME,
        "num_cpus": settings.ml.trainer_num_cpus,
        "num_gpus": gpus,
        "max_concurrency": 2,
        "get_if_exists": True,
    }


def spawn_trainer(settings: Settings, namespace: str | None = None) -> ActorHandle[Any]:
    """Start the named Trainer (or return the running one) and wait until it is ready."""
    options = trainer_options(settings, dict(ray.cluster_resources()))  # type: ignore[no-untyped-call]
    if namespace is not None:
        options["namespace"] = namespace
    actor: Any = ray.remote(TrainerActor)
    handle: ActorHandle[Any] = actor.options(**options).remote(settings)
    try:
        ray.get(handle.status.remote(), timeout=_READY_TIMEOUT_S)
    except ray.exceptions.GetTimeoutError as exc:
        raise ClusterError(
            f"the Trainer actor did not start within {_READY_TIMEOUT_S:g} s",
            fix=f"check free resources (it asks num_cpus={options['num_cpus']}, "
            f"num_gpus={options['num_gpus']})",
        ) from exc
    except ray.exceptions.RayActorError as exc:
        raise ClusterError(
            f"the Trainer actor died while starting: {exc}", fix="see its log in the Ray dashboard"
        ) from exc
    return handle


class TrainerComponent:
    """The ``ml`` capability of the app: one Trainer actor serving the current model."""

    name = "trainer"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.handle: ActorHandle[Any] | None = None

    def start(self, ray_info: RayInfo) -> None:
        self.handle = spawn_trainer(self.settings, ray_info.namespace)

    def status(self) -> dict[str, Any]:
        if self.handle is None:
            return {}
        try:
            return dict(ray.get(self.handle.status.remote(), timeout=10))
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            raise ClusterError(f"the Trainer actor does not answer: {exc}") from exc

    def stop(self) -> None:
        if self.handle is not None:
            ray.kill(self.handle)
            self.handle = None
