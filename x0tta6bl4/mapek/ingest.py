"""Telemetry ingestion: a bounded queue of batch refs and per-window aggregates.

Producers (MeshNode, EbpfAgent) ``ray.put`` columnar
:class:`~x0tta6bl4.telemetry.TelemetryBatch` objects and hand the Supervisor
lists of refs.  :class:`TelemetryQueue` holds at most ``max_batches`` of them:
what does not fit is dropped and counted, and the producer learns it from the
:class:`IngestAck` (never unbounded memory, never a blocked producer).
:class:`WindowAggregator` folds batches into per-entity, per-metric sums with
numpy (no Python loop over samples) and closes one :class:`Window` per tick.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from x0tta6bl4.errors import BackPressureError, TelemetryError
from x0tta6bl4.telemetry import TelemetryBatch

__all__ = ["IngestAck", "KindWindow", "TelemetryQueue", "Window", "WindowAggregator"]

T = TypeVar("T")
_LAYOUT_CACHE = 4096
"""Entity layouts remembered per telemetry kind (one per producer and batch shape)."""
FloatMatrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class IngestAck:
    """The answer to one ``ingest(refs)`` call."""

    accepted: int
    dropped: int
    queued: int
    max_queued: int

    def raise_for_drops(self) -> None:
        """Raise :class:`BackPressureError` when any batch of the call was dropped."""
        if self.dropped:
            raise BackPressureError(self.queued, self.max_queued)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestAck:
        return cls(**data)


class TelemetryQueue(Generic[T]):
    """A bounded FIFO of batch refs, filled by ``put`` and drained by one consumer task.

    Args:
        max_batches: refs held at most; a ``put`` beyond it drops the rest.
    """

    def __init__(self, max_batches: int) -> None:
        if max_batches < 1:
            raise TelemetryError(
                f"max_batches must be >= 1, got {max_batches}",
                fix="set supervisor.max_queued_batches to a positive number",
            )
        self.max_batches = max_batches
        self._items: deque[T] = deque()
        self._ready = asyncio.Event()
        self.messages = 0
        self.accepted = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, items: Sequence[T]) -> IngestAck:
        """Queue what fits (oldest first), drop and count the rest; never blocks."""
        self.messages += 1
        room = self.max_batches - len(self._items)
        take = max(0, min(room, len(items)))
        self._items.extend(items[:take])
        dropped = len(items) - take
        self.accepted += take
        self.dropped += dropped
        if take:
            self._ready.set()
        return IngestAck(take, dropped, len(self._items), self.max_batches)

    def take(self, limit: int) -> list[T]:
        """Up to ``limit`` refs, oldest first, without waiting."""
        count = min(limit, len(self._items))
        out = [self._items.popleft() for _ in range(count)]
        if not self._items:
            self._ready.clear()
        return out

    async def wait(self) -> None:
        """Return once the queue holds at least one ref."""
        while not self._items:
            await self._ready.wait()

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self._items),
            "max_queued": self.max_batches,
            "messages": self.messages,
            "accepted": self.accepted,
            "dropped": self.dropped,
        }


@dataclass
class KindWindow:
    """One telemetry kind's aggregates over a window.

    ``mean``, ``last`` and ``count`` are ``[entities, metrics]``; ``mean`` is NaN
    where the window had no sample; ``last_seen`` is each entity's newest
    sample time over all windows so far.
    """

    kind: str
    entities: list[str]
    metrics: list[str]
    mean: FloatMatrix
    last: FloatMatrix
    count: FloatMatrix
    last_seen: npt.NDArray[np.float64]

    def column(self, metric: str) -> int:
        return self.metrics.index(metric)


@dataclass
class Window:
    """What the aggregator collected between two ticks."""

    start: float
    end: float
    kinds: dict[str, KindWindow] = field(default_factory=dict)
    samples: int = 0
    batches: int = 0


class _Table:
    """Growing ``[entities, metrics]`` accumulators of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.rows: dict[str, int] = {}
        self.cols: dict[str, int] = {}
        self.sums = np.zeros((8, 4))
        self.counts = np.zeros((8, 4))
        self.last = np.full((8, 4), np.nan)
        self.last_ts = np.full((8, 4), -np.inf)
        self.last_seen = np.full(8, -np.inf)
        self._layouts: dict[bytes, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}

    def layout(
        self, entity: npt.NDArray[np.str_]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Row of each sample, and the index of each entity's last sample (a batch
        lists an entity's samples oldest first, as :class:`BatchBuilder` does).

        Producers send the same entities batch after batch, so layouts are cached
        by the entity column's bytes (a bounded cache; eviction only costs time).
        """
        key = entity.tobytes()
        cached = self._layouts.get(key)
        if cached is None:
            unique, inverse = np.unique(entity, return_inverse=True)
            rows = self.row_ids(unique)[inverse]
            order = np.argsort(rows, kind="stable")
            boundary = np.r_[rows[order][1:] != rows[order][:-1], True]
            cached = (rows, order[boundary])
            if len(self._layouts) >= _LAYOUT_CACHE:
                self._layouts.pop(next(iter(self._layouts)))
            self._layouts[key] = cached
        return cached

    def row_ids(self, names: npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
        for name in names.tolist():
            if name not in self.rows:
                self.rows[name] = len(self.rows)
        self._fit(len(self.rows), len(self.cols))
        return np.fromiter((self.rows[n] for n in names.tolist()), np.int64, len(names))

    def col_id(self, metric: str) -> int:
        if metric not in self.cols:
            self.cols[metric] = len(self.cols)
            self._fit(len(self.rows), len(self.cols))
        return self.cols[metric]

    def _fit(self, rows: int, cols: int) -> None:
        have_r, have_c = self.sums.shape
        if rows <= have_r and cols <= have_c:
            return
        new_r, new_c = max(have_r, 2 * rows), max(have_c, 2 * cols)
        for name, fill in (("sums", 0.0), ("counts", 0.0), ("last", np.nan), ("last_ts", -np.inf)):
            grown = np.full((new_r, new_c), fill)
            grown[:have_r, :have_c] = getattr(self, name)
            setattr(self, name, grown)
        seen = np.full(new_r, -np.inf)
        seen[:have_r] = self.last_seen
        self.last_seen = seen


class WindowAggregator:
    """Folds telemetry batches into per-window sums; :meth:`close` ends a window.

    Thread-safe: batches may be folded in on a worker thread while the event
    loop closes windows.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, _Table] = {}
        self._start = start
        self._samples = 0
        self._batches = 0

    def add(self, batch: TelemetryBatch) -> int:
        """Fold one batch in; returns its sample count (rows x metrics)."""
        if not isinstance(batch, TelemetryBatch):
            raise TelemetryError(
                f"expected a TelemetryBatch, got {type(batch).__name__}",
                fix="producers must ray.put TelemetryBatch objects and send the refs",
            )
        if not len(batch) or not batch.metrics:
            return 0
        with self._lock:
            return self._add(batch)

    def _add(self, batch: TelemetryBatch) -> int:
        table = self._tables.get(batch.kind)
        if table is None:
            table = self._tables[batch.kind] = _Table(batch.kind)
        rows, newest = table.layout(batch.entity)
        cols = np.array([table.col_id(m) for m in batch.metrics], dtype=np.int64)
        ts = np.asarray(batch.ts, dtype=np.float64)
        values = np.stack([np.asarray(v, dtype=np.float64) for v in batch.metrics.values()], 1)
        ok = ~np.isnan(values)
        width = table.sums.shape[1]
        cells = (rows[:, None] * width + cols[None, :]).ravel()  # flat: 1-D indexing is fast
        kept = np.where(ok, values, 0.0).ravel()
        sums, counts = table.sums.reshape(-1), table.counts.reshape(-1)
        if len(newest) == len(rows):  # one row per entity: plain fancy indexing is exact
            sums[cells] += kept
            counts[cells] += ok.ravel()
            table.last_seen[rows] = np.maximum(table.last_seen[rows], ts)
        else:
            np.add.at(sums, cells, kept)
            np.add.at(counts, cells, ok.ravel().astype(np.float64))
            np.maximum.at(table.last_seen, rows, ts)
        grid = cells.reshape(len(rows), -1)
        # Latest value per entity and metric: each entity's last row in the batch (rows
        # come oldest first), one write per cell, kept only if newer than what we have.
        newest_cells, v, t = grid[newest], values[newest], ts[newest]
        last_ts = table.last_ts.reshape(-1)
        take = ok[newest] & (t[:, None] >= last_ts[newest_cells])
        at = newest_cells[take]
        table.last.reshape(-1)[at] = v[take]
        last_ts[at] = np.broadcast_to(t[:, None], take.shape)[take]
        self._samples += batch.samples
        self._batches += 1
        return batch.samples

    def close(self, end: float) -> Window:
        """The window since the previous close; sums restart from zero."""
        with self._lock:
            return self._close(end)

    def _close(self, end: float) -> Window:
        window = Window(self._start, end, samples=self._samples, batches=self._batches)
        for kind, table in self._tables.items():
            r, c = len(table.rows), len(table.cols)
            counts = table.counts[:r, :c].copy()
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(counts > 0, table.sums[:r, :c] / counts, np.nan)
            window.kinds[kind] = KindWindow(
                kind,
                list(table.rows),
                list(table.cols),
                mean,
                table.last[:r, :c].copy(),
                counts,
                table.last_seen[:r].copy(),
            )
            table.sums[:] = 0.0
            table.counts[:] = 0.0
        self._start, self._samples, self._batches = end, 0, 0
        return window
