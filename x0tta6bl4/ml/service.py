"""Train, register and serve RCA models: the logic the Trainer actor wraps (no Ray here).

One :class:`RcaService` owns a registry directory.  ``train`` generates twin
cases (or takes given ones), fits a model, scores it on held-out topologies
and registers it as current.  ``infer`` analyzes a metrics table with the
current model (or the shipped default when none was trained) and returns
plain dicts that cross process boundaries unchanged.  Inference may run while
a training run is in progress: the model is swapped under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from x0tta6bl4 import loggers
from x0tta6bl4.config import MlSettings
from x0tta6bl4.ml.evaluate import evaluate_scorer, kind_accuracy, model_scorer
from x0tta6bl4.ml.rank import Analyzer, GraphLike, default_model
from x0tta6bl4.ml.registry import ModelRegistry
from x0tta6bl4.ml.scenarios.case import Case, load_case
from x0tta6bl4.ml.scenarios.dataset import HELDOUT_SPEC, TRAIN_SPEC, dataset_hash, generate_dataset
from x0tta6bl4.ml.train import TrainConfig, fit, make_samples, set_threads

__all__ = ["Progress", "RcaService"]

log = loggers.ml
Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: ``generate``, ``train``, ``evaluate``."""


class RcaService:
    """Model lifecycle for root-cause analysis.

    Args:
        settings: the ``ml`` section.
        data_dir: the platform's state directory (registry default below it).
        device: where training runs (``cpu`` or ``cuda``); inference stays on the CPU.
    """

    def __init__(self, settings: MlSettings, data_dir: Path, device: str = "cpu") -> None:
        self.settings, self.device = settings, device
        self.registry = ModelRegistry(settings.models_dir or Path(data_dir) / "ml" / "models")
        self._lock = threading.Lock()
        self._analyzer: Analyzer | None = None
        self._training = False
        set_threads(settings.torch_threads)

    def train(
        self,
        *,
        quick: bool = False,
        cases: Sequence[Case] | None = None,
        epochs: int | None = None,
        layers: int = 3,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Fit, evaluate on held-out topologies, register as current; returns the record."""
        s = self.settings
        notify = progress or (lambda _stage, _done, _total: None)
        self._training = True
        try:
            if cases is None:
                count = s.quick_cases if quick else s.train_cases
                spec = replace(TRAIN_SPEC, cases=count, seed=s.seed)
                cases = generate_dataset(spec, lambda d: notify("generate", d, count))
            config = TrainConfig(
                epochs=epochs or (s.quick_epochs if quick else s.epochs), layers=layers, seed=s.seed
            )
            samples = make_samples(cases, config.jitter_s, seed=s.seed)
            model, history = fit(
                samples,
                config,
                lambda e, n, _loss: notify("train", e, n),
                device=self.device,
            )
            metrics = {"train.seconds": history["seconds"], "train.cases": history["cases"]}
            if s.eval_cases:
                held = generate_dataset(
                    replace(HELDOUT_SPEC, cases=s.eval_cases, seed=HELDOUT_SPEC.seed + s.seed),
                    lambda d: notify("evaluate", d, s.eval_cases),
                )
                held_samples = make_samples(held, config.jitter_s, seed=7)
                scores = evaluate_scorer(model_scorer(model), held, held_samples)
                metrics.update(
                    {f"heldout.{k}": v for k, v in scores.items() if k in ("ac1", "ac3", "avg5")}
                )
                metrics["heldout.kind_accuracy"] = kind_accuracy(model, held_samples)
            record = self.registry.register(
                model,
                metrics=metrics,
                data_hash=dataset_hash(list(cases)),
                train_config=config.to_dict(),
            )
        finally:
            self._training = False
        with self._lock:
            self._analyzer = self._make_analyzer(model, record.version)
        log.info(
            "model_trained",
            version=record.version,
            **{k.replace(".", "_"): v for k, v in metrics.items()},
        )
        return record.to_dict()

    def analyzer(self) -> Analyzer:
        """The analyzer of the current model (the shipped default when none is registered)."""
        with self._lock:
            current = self.registry.current()
            wanted = current.version if current else "default"
            if self._analyzer is None or self._analyzer.version != wanted:
                if current is None:
                    self._analyzer = self._make_analyzer(default_model(), "default")
                else:
                    model, record = self.registry.load(current.version)
                    self._analyzer = self._make_analyzer(model, record.version)
            return self._analyzer

    def infer(
        self,
        metrics: pd.DataFrame,
        graph: GraphLike = None,
        anomaly_start: Any = None,
        top: int | None = None,
        explain: bool = True,
    ) -> dict[str, Any]:
        """Root causes (with explanations) and anomalous entities, as plain dicts."""
        return self.analyzer().analyze(
            metrics, graph, anomaly_start, top or self.settings.top_k, explain
        )

    def infer_case(self, directory: Path | str, top: int | None = None) -> dict[str, Any]:
        """Analyze a case directory at its labelled start (the label's fault is not used)."""
        case = load_case(directory)
        return self.infer(case.frame(), case.topology, case.label.start_s, top)

    def status(self) -> dict[str, Any]:
        current = self.registry.current()
        return {
            "model_version": current.version if current else "default",
            "models": len(self.registry.records()),
            "training": self._training,
            "device": self.device,
        }

    def _make_analyzer(self, model: Any, version: str) -> Analyzer:
        return Analyzer(
            model, version, self.settings.anomaly_threshold, self.settings.explain_steps
        )
