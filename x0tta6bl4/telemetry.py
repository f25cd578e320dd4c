"""The columnar telemetry batch every producer ships to the Supervisor.

Producers (MeshNode, EbpfAgent) append samples to a :class:`BatchBuilder`,
build one :class:`TelemetryBatch` per kind and interval, ``ray.put`` it (or
the list of one interval's batches: a put costs about a millisecond of CPU,
whatever its size) and send only the object ref; consumers read either with
:func:`unpack`.  Columns are numpy arrays so a batch is one contiguous object
in the object store and the consumer aggregates without Python loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from x0tta6bl4.errors import TelemetryError

__all__ = ["BatchBuilder", "TelemetryBatch", "unpack"]


@dataclass(frozen=True)
class TelemetryBatch:
    """Samples of one kind from one producer, one row per (time, entity).

    Attributes:
        source: the producer, e.g. ``"mesh:n3"`` or ``"ebpf:<ray node id>"``.
        kind: what the entities are: ``"link"``, ``"node"``, ``"iface"``, ``"drop"``.
        ts: sample times, unix seconds, shape ``[rows]``.
        entity: entity names (``"n3-n4"``, ``"n3"``, ``"veth0"``), shape ``[rows]``.
        metrics: metric name to float64 column, each of shape ``[rows]``.
    """

    source: str
    kind: str
    ts: npt.NDArray[np.float64]
    entity: npt.NDArray[np.str_]
    metrics: Mapping[str, npt.NDArray[np.float64]]

    def __post_init__(self) -> None:
        rows = len(self.ts)
        if len(self.entity) != rows or any(len(col) != rows for col in self.metrics.values()):
            raise TelemetryError(
                f"telemetry batch from {self.source}: columns differ in length",
                fix="build batches with BatchBuilder",
            )

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def samples(self) -> int:
        """Number of metric values carried (rows x metric columns)."""
        return len(self.ts) * len(self.metrics)


@dataclass
class BatchBuilder:
    """Accumulates rows cheaply in lists; :meth:`build` turns them into columns."""

    source: str
    kind: str
    metric_names: tuple[str, ...]
    _ts: list[float] = field(default_factory=list)
    _entity: list[str] = field(default_factory=list)
    _values: list[tuple[float, ...]] = field(default_factory=list)

    def add(self, ts: float, entity: str, values: tuple[float, ...]) -> None:
        if len(values) != len(self.metric_names):
            raise TelemetryError(
                f"sample for {entity} has {len(values)} values, expected "
                f"{len(self.metric_names)} ({', '.join(self.metric_names)})"
            )
        self._ts.append(ts)
        self._entity.append(entity)
        self._values.append(values)

    def __len__(self) -> int:
        return len(self._ts)

    def build(self) -> TelemetryBatch:
        """Return the batch of everything added so far and start a new one."""
        table = np.asarray(self._values, dtype=np.float64).reshape(-1, len(self.metric_names))
        batch = TelemetryBatch(
            source=self.source,
            kind=self.kind,
            ts=np.asarray(self._ts, dtype=np.float64),
            entity=np.asarray(self._entity, dtype=np.str_),
            metrics={name: table[:, i].copy() for i, name in enumerate(self.metric_names)},
        )
        self._ts, self._entity, self._values = [], [], []
        return batch


def unpack(obj: object) -> list[TelemetryBatch]:
    """The batches in one object a producer put: a :class:`TelemetryBatch` or a list of them."""
    items: list[object] = list(obj) if isinstance(obj, list) else [obj]
    batches = [item for item in items if isinstance(item, TelemetryBatch)]
    if len(batches) != len(items):
        wrong = next(item for item in items if not isinstance(item, TelemetryBatch))
        raise TelemetryError(
            f"expected a TelemetryBatch, got {type(wrong).__name__}",
            fix="producers must ray.put TelemetryBatch objects (or lists of them)",
        )
    return batches
