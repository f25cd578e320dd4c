"""One fault case on disk: the graph, the time series and the label.

Format version 1 is a directory::

    graph.json      the Topology JSON (``x0tta6bl4.mesh.topology``, its own version field)
    metrics.npz     arrays ``time`` [T] float64 seconds, ``columns`` [C] str
                    ("<entity>:<metric>"), ``values`` [T, C] float32, NaN = not reported
                    (``metrics.csv.gz`` with a ``time`` column is read as well)
    label.json      {"format_version": 1, "kind", "location", "start_s", "severity",
                     "source", "meta"}

``docs/ml.md`` describes every field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from x0tta6bl4.errors import MLError, TopologyError
from x0tta6bl4.mesh.topology import Topology
from x0tta6bl4.ml.schema import FaultKind

__all__ = ["CASE_FORMAT_VERSION", "Case", "Label", "load_case", "save_case"]

CASE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Label:
    """What was injected: kind, location (a node name or link key) and start time.

    ``location`` is None for a ``none`` case; ``start_s`` is on the same time
    axis as the metrics; ``severity`` is the kind's magnitude (loss fraction,
    added delay in ms, utilisation, ...).
    """

    kind: FaultKind
    location: str | None
    start_s: float
    severity: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "location": self.location,
            "start_s": self.start_s,
            "severity": self.severity,
        }


@dataclass
class Case:
    """A fault case in memory; rows of ``values`` are times, columns are entity metrics."""

    topology: Topology
    times: npt.NDArray[np.float64]
    columns: list[str]
    values: npt.NDArray[np.float32]
    label: Label
    source: str = "twin"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.times), len(self.columns)):
            raise MLError(
                f"case values have shape {self.values.shape}, expected "
                f"({len(self.times)}, {len(self.columns)})",
                fix="give one row per time and one column per '<entity>:<metric>'",
            )

    def frame(self) -> pd.DataFrame:
        """The metrics as a DataFrame indexed by time, one column per entity metric."""
        return pd.DataFrame(
            self.values, index=pd.Index(self.times, name="time"), columns=self.columns
        )

    def digest(self) -> str:
        """A content hash of graph, metrics and label (for dataset hashes)."""
        h = hashlib.sha256()
        h.update(json.dumps(self.topology.to_dict(), sort_keys=True).encode())
        h.update("\n".join(self.columns).encode())
        h.update(np.ascontiguousarray(self.times).tobytes())
        h.update(np.ascontiguousarray(self.values).tobytes())
        h.update(json.dumps(self.label.to_dict(), sort_keys=True).encode())
        return h.hexdigest()


def save_case(case: Case, directory: Path | str) -> Path:
    """Write ``case`` as a format-1 directory (created if missing) and return it."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    case.topology.save(path / "graph.json")
    np.savez_compressed(
        path / "metrics.npz",
        time=case.times.astype(np.float64),
        columns=np.asarray(case.columns, dtype=np.str_),
        values=case.values.astype(np.float32),
    )
    label = {
        "format_version": CASE_FORMAT_VERSION,
        **case.label.to_dict(),
        "source": case.source,
        "meta": case.meta,
    }
    (path / "label.json").write_text(json.dumps(label, indent=1) + "\n", encoding="utf-8")
    return path


def load_case(directory: Path | str) -> Case:
    """Read a case directory written by :func:`save_case` (or by hand, same format)."""
    path = Path(directory)
    if not path.is_dir():
        raise MLError(f"scenario {path} is not a directory", fix="pass a case directory")
    label_data = _read_json(path / "label.json")
    version = label_data.get("format_version")
    if version != CASE_FORMAT_VERSION:
        raise MLError(
            f"case {path} has format version {version!r}; this version reads {CASE_FORMAT_VERSION}",
            fix="regenerate the case with `x0tta6bl4 ml dataset`",
        )
    try:
        topology = Topology.load(path / "graph.json", require_connected=False)
    except TopologyError as exc:
        raise MLError(f"case {path}: {exc.message}", fix=exc.fix) from exc
    times, columns, values = _read_metrics(path)
    try:
        label = Label(
            kind=FaultKind(label_data["kind"]),
            location=label_data.get("location"),
            start_s=float(label_data["start_s"]),
            severity=float(label_data.get("severity", 0.0)),
        )
    except (KeyError, ValueError) as exc:
        raise MLError(
            f"case {path}: label.json is malformed ({exc})",
            fix=f"give kind (one of {', '.join(k.value for k in FaultKind)}) and start_s",
        ) from exc
    return Case(
        topology,
        times,
        columns,
        values,
        label,
        source=str(label_data.get("source", "unknown")),
        meta=dict(label_data.get("meta") or {}),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MLError(
            f"cannot read {path}: {exc.strerror}", fix="is this a case directory?"
        ) from exc
    except json.JSONDecodeError as exc:
        raise MLError(f"{path} is not JSON: {exc}", fix="regenerate the case") from exc
    if not isinstance(data, dict):
        raise MLError(f"{path} must hold a JSON object", fix="regenerate the case")
    return data


def _read_metrics(path: Path) -> tuple[npt.NDArray[np.float64], list[str], npt.NDArray[np.float32]]:
    npz, csv = path / "metrics.npz", path / "metrics.csv.gz"
    try:
        if npz.is_file():
            with np.load(npz, allow_pickle=False) as data:
                return (
                    data["time"].astype(np.float64),
                    [str(c) for c in data["columns"]],
                    data["values"].astype(np.float32),
                )
        if csv.is_file():
            frame = pd.read_csv(csv, index_col="time")
            return (
                frame.index.to_numpy(np.float64),
                [str(c) for c in frame.columns],
                frame.to_numpy(np.float32),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise MLError(
            f"cannot read the metrics of case {path}: {exc}", fix="regenerate it"
        ) from exc
    raise MLError(
        f"case {path} has neither metrics.npz nor metrics.csv.gz",
        fix="write the time series as described in docs/ml.md",
    )
