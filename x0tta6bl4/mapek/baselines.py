"""Adaptive baselines: an EWMA of each metric and an EWMA of its absolute deviation.

Instead of fixed thresholds, every ``(kind, entity, metric)`` learns its own
normal level and spread from the windows it sees.  A window's value is judged
by its robust z-score ``(x - mean) / scale`` with
``scale = max(1.4826 * mad, floor(metric), rel_floor * |mean|)``; the floor
keeps a metric that never moved (loss 0.0, link up 1.0) from calling noise an
anomaly.  A window judged anomalous (``|z| >= freeze_z``) moves the mean only
at the slow ``drift`` rate and leaves the spread alone, so a fault does not
drag the baseline along with it, while a lasting change of level is still
learned after a few hundred windows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ["METRIC_FLOOR", "BaselineRecord", "BaselineSnapshot", "Baselines"]

FloatMatrix = npt.NDArray[np.float64]

METRIC_FLOOR: Mapping[str, float] = {
    # mesh link telemetry (x0tta6bl4.mesh.node.LINK_METRICS)
    "up": 0.05,
    "rtt_ms": 0.5,
    "loss": 0.01,
    "etx": 0.1,
    "df": 0.02,
    "dr": 0.02,
    # mesh node telemetry (per-window increments of counters, and gauges)
    "links_up": 0.25,
    "routes": 0.5,
    "route_changes": 2.0,
    "heal_events": 0.5,
    "rejected": 1.0,
    "slow_ticks": 1.0,
    # eBPF telemetry
    "drops_per_s": 1.0,
}
"""Smallest change of a metric that can count as real (the floor of its scale)."""
DEFAULT_FLOOR = 1e-3
MAD_TO_SIGMA = 1.4826


class BaselineRecord(NamedTuple):
    """One baseline as Knowledge stores it (a plain tuple underneath)."""

    kind: str
    entity: str
    metric: str
    mean: float
    mad: float
    n: int


class _KindBaselines:
    def __init__(self) -> None:
        self.entities: list[str] = []
        self.metrics: list[str] = []
        self.mean = np.zeros((0, 0))
        self.mad = np.zeros((0, 0))
        self.n = np.zeros((0, 0))

    def align(
        self,
        entities: list[str],
        metrics: list[str],
        saved: Mapping[tuple[str, str], BaselineRecord],
    ) -> None:
        """Grow to the window's (append-only) entity and metric lists."""
        if len(entities) == len(self.entities) and len(metrics) == len(self.metrics):
            return
        old_r, old_c = len(self.entities), len(self.metrics)
        r, c = len(entities), len(metrics)
        for name in ("mean", "mad", "n"):
            grown = np.zeros((r, c))
            grown[:old_r, :old_c] = getattr(self, name)
            setattr(self, name, grown)
        if saved:
            rows = {entity: i for i, entity in enumerate(entities)}
            cols = {metric: j for j, metric in enumerate(metrics)}
            for (entity, metric), record in saved.items():
                i, j = rows.get(entity, -1), cols.get(metric, -1)
                if (i >= old_r or j >= old_c) and i >= 0 and j >= 0:
                    self.mean[i, j], self.mad[i, j], self.n[i, j] = (
                        record.mean,
                        record.mad,
                        record.n,
                    )
        self.entities, self.metrics = list(entities), list(metrics)


class Baselines:
    """Per-metric EWMA/MAD baselines, vectorised per telemetry kind.

    Args:
        alpha: weight of the newest normal window (0.1: ~10 windows of memory).
        warmup: windows a baseline needs before it judges anything.
        freeze_z: from this robust z-score on, a window is anomalous.
        drift: weight of an anomalous window in the mean (its spread is not learned).
        rel_floor: the scale is at least this fraction of the mean.
    """

    def __init__(
        self,
        alpha: float = 0.1,
        warmup: int = 5,
        freeze_z: float = 6.0,
        drift: float = 0.01,
        rel_floor: float = 0.05,
    ) -> None:
        self.alpha, self.warmup, self.freeze_z = alpha, warmup, freeze_z
        self.drift, self.rel_floor = drift, rel_floor
        self._kinds: dict[str, _KindBaselines] = {}
        self._saved: dict[str, dict[tuple[str, str], BaselineRecord]] = {}

    def load(self, records: Iterable[BaselineRecord]) -> None:
        """Seed baselines saved earlier (before the first window); they apply as their
        entities first appear."""
        for record in records:
            self._saved.setdefault(record.kind, {})[(record.entity, record.metric)] = record

    def judge(
        self, kind: str, entities: list[str], metrics: list[str], values: FloatMatrix
    ) -> tuple[FloatMatrix, FloatMatrix, FloatMatrix]:
        """Score ``values`` against the baselines, then learn from them.

        Returns ``(baseline, scale, z)`` as they were before this window; ``z``
        is NaN where the value is missing or the baseline is still warming up.
        """
        state = self._kinds.setdefault(kind, _KindBaselines())
        state.align(entities, metrics, self._saved.get(kind, {}))
        floor = np.array([METRIC_FLOOR.get(m, DEFAULT_FLOOR) for m in metrics])[None, :]
        scale = np.maximum(
            MAD_TO_SIGMA * state.mad, np.maximum(floor, self.rel_floor * np.abs(state.mean))
        )
        present = ~np.isnan(values)
        ready = present & (state.n >= self.warmup)
        with np.errstate(invalid="ignore"):
            z = np.where(ready, (values - state.mean) / scale, np.nan)
        baseline = state.mean.copy()
        self._learn(state, values, present, np.abs(np.nan_to_num(z)) >= self.freeze_z)
        return baseline, scale, z

    def _learn(
        self,
        state: _KindBaselines,
        values: FloatMatrix,
        present: npt.NDArray[np.bool_],
        anomalous: npt.NDArray[np.bool_],
    ) -> None:
        fresh = present & (state.n == 0)
        state.mean[fresh] = values[fresh]
        learning = present & ~fresh
        # Early windows learn fast (1/n) so a baseline is usable after `warmup` windows.
        rate = np.maximum(self.alpha, 1.0 / np.maximum(state.n + 1, 1))
        rate = np.where(anomalous, self.drift, rate)
        deviation = np.abs(values - state.mean)
        spread = learning & ~anomalous
        state.mean[learning] += (rate * (values - state.mean))[learning]
        state.mad[spread] += (rate * (deviation - state.mad))[spread]
        state.n[present] += 1

    def snapshot(self) -> BaselineSnapshot:
        """A copy of every baseline, cheap to take on the event loop; turn it into
        records (:meth:`BaselineSnapshot.records`) on another thread."""
        kinds = {
            kind: (list(st.entities), list(st.metrics), st.mean.copy(), st.mad.copy(), st.n.copy())
            for kind, st in self._kinds.items()
        }
        return BaselineSnapshot(kinds, {k: dict(v) for k, v in self._saved.items()})

    def records(self) -> list[BaselineRecord]:
        """Every baseline with data (live ones over seeded ones), for Knowledge."""
        return self.snapshot().records()


@dataclass(frozen=True)
class BaselineSnapshot:
    """Baselines copied at one moment (see :meth:`Baselines.snapshot`)."""

    kinds: Mapping[str, tuple[list[str], list[str], FloatMatrix, FloatMatrix, FloatMatrix]]
    saved: Mapping[str, Mapping[tuple[str, str], BaselineRecord]]

    def rows(self) -> list[tuple[str, str, str, float, float, int]]:
        """``(kind, entity, metric, mean, mad, n)`` of every baseline with data, live
        ones over seeded ones; built with numpy and ``zip`` (tens of thousands are
        common, and this runs beside the event loop)."""
        out: dict[tuple[str, str, str], tuple[str, str, str, float, float, int]] = {
            r[:3]: r for saved in self.saved.values() for r in saved.values()
        }
        for kind, (entities, metrics, mean, mad, n) in self.kinds.items():
            i, j = np.nonzero(n > 0)
            names = np.asarray(entities, dtype=object)[i].tolist()
            cols = np.asarray(metrics, dtype=object)[j].tolist()
            for row in zip(
                [kind] * len(i),
                names,
                cols,
                mean[i, j].tolist(),
                mad[i, j].tolist(),
                n[i, j].astype(np.int64).tolist(),
                strict=True,
            ):
                out[row[:3]] = row
        return list(out.values())

    def records(self) -> list[BaselineRecord]:
        return [BaselineRecord(*row) for row in self.rows()]
