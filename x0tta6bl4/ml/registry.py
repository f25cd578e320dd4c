"""Checkpoints and a small model registry on disk.

Layout under the registry root (``<data_dir>/ml/models`` by default)::

    v0001/model.pt      weights and constructor arguments (torch, weights-only)
    v0001/meta.json     version, created_at, metrics, data_hash, train config
    current             the version the Trainer serves

A checkpoint records the feature names it was trained on; loading one made
for other features fails with a clear error instead of scoring nonsense.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from x0tta6bl4.errors import MLError
from x0tta6bl4.ml.features import FEATURES
from x0tta6bl4.ml.model import RcaGNN

__all__ = [
    "CHECKPOINT_FORMAT",
    "DEFAULT_CHECKPOINT",
    "ModelRecord",
    "ModelRegistry",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = 1
DEFAULT_CHECKPOINT = Path(__file__).with_name("default_model.pt")
"""Shipped model, made by ``x0tta6bl4 ml train --quick --export x0tta6bl4/ml/default_model.pt``."""


def save_checkpoint(model: RcaGNN, path: Path | str, meta: dict[str, Any] | None = None) -> Path:
    """Write weights, constructor arguments, feature names and ``meta`` to ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config(),
        "features": list(FEATURES),
        "state_dict": state,
        "meta": json.dumps(meta or {}),
    }
    tmp = target.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint(path: Path | str) -> tuple[RcaGNN, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`: the model (eval mode) and meta."""
    source = Path(path)
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise MLError(
            f"no model checkpoint at {source}", fix="train one with `x0tta6bl4 ml train`"
        ) from exc
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise MLError(
            f"checkpoint {source} cannot be read: {exc}", fix="train the model again"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise MLError(
            f"checkpoint {source} is not in format {CHECKPOINT_FORMAT}", fix="train the model again"
        )
    if payload.get("features") != list(FEATURES):
        raise MLError(
            f"checkpoint {source} was trained on other input features than this version computes",
            fix="train the model again with `x0tta6bl4 ml train`",
        )
    try:
        model = RcaGNN(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise MLError(
            f"checkpoint {source} does not fit this version's model: {exc}",
            fix="train the model again with `x0tta6bl4 ml train`",
        ) from exc
    model.eval()
    return model, json.loads(payload.get("meta") or "{}")


@dataclass(frozen=True)
class ModelRecord:
    """One registered model."""

    version: str
    path: Path
    created_at: str
    metrics: dict[str, float]
    data_hash: str
    train_config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path),
            "created_at": self.created_at,
            "metrics": self.metrics,
            "data_hash": self.data_hash,
            "train_config": self.train_config,
        }


class ModelRegistry:
    """Numbered model versions in a directory, one of them current."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def register(
        self,
        model: RcaGNN,
        *,
        metrics: dict[str, float],
        data_hash: str,
        train_config: dict[str, Any],
        make_current: bool = True,
    ) -> ModelRecord:
        """Store ``model`` as the next version (and make it current)."""
        self.root.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name[1:]) for p in self.root.glob("v[0-9]*") if p.name[1:].isdigit()]
        version = f"v{max(numbers, default=0) + 1:04d}"
        folder = self.root / version
        folder.mkdir()
        meta = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "metrics": {k: float(v) for k, v in metrics.items()},
            "data_hash": data_hash,
            "train_config": train_config,
        }
        save_checkpoint(model, folder / "model.pt", meta)
        (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if make_current:
            self.set_current(version)
        return self._record(folder)

    def set_current(self, version: str) -> None:
        if not (self.root / version / "model.pt").is_file():
            raise MLError(
                f"model {version} is not in the registry at {self.root}",
                fix="see `x0tta6bl4 ml models`",
            )
        tmp = self.root / "current.tmp"
        tmp.write_text(version + "\n", encoding="utf-8")
        os.replace(tmp, self.root / "current")

    def current(self) -> ModelRecord | None:
        pointer = self.root / "current"
        if not pointer.is_file():
            return None
        return self._record(self.root / pointer.read_text(encoding="utf-8").strip())

    def records(self) -> list[ModelRecord]:
        if not self.root.is_dir():
            return []
        return [
            self._record(p)
            for p in sorted(self.root.glob("v[0-9]*"))
            if (p / "meta.json").is_file()
        ]

    def load(self, version: str | None = None) -> tuple[RcaGNN, ModelRecord]:
        """The model of ``version`` (the current one when None)."""
        record = self.current() if version is None else self._record(self.root / version)
        if record is None:
            raise MLError(
                f"no current model in {self.root}", fix="train one with `x0tta6bl4 ml train`"
            )
        model, _ = load_checkpoint(record.path)
        return model, record

    def _record(self, folder: Path) -> ModelRecord:
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise MLError(
                f"model {folder.name} in {self.root} is unreadable: {exc}", fix="train again"
            ) from exc
        return ModelRecord(
            version=meta["version"],
            path=folder / "model.pt",
            created_at=meta["created_at"],
            metrics=meta.get("metrics", {}),
            data_hash=meta.get("data_hash", ""),
            train_config=meta.get("train_config", {}),
        )
