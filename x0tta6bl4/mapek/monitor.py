"""Monitor: turn each closed telemetry window into symptoms and a view of the mesh.

Gauges (RTT, loss, links up) are judged by their window mean; counters
(route changes, rejected datagrams) by their increase over the window.  A
value is a symptom when its robust z-score against the adaptive baseline
(:mod:`~x0tta6bl4.mapek.baselines`), signed so that positive is worse, reaches
``z_threshold``.  A node whose telemetry stopped for ``stale_after_s`` is a
``silent`` symptom.  The raw link-up flags and silent nodes also give the
:class:`~x0tta6bl4.mapek._types.MeshView` the digital twin mirrors.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from x0tta6bl4.mapek._types import Clock, MeshView, Symptom
from x0tta6bl4.mapek.baselines import Baselines
from x0tta6bl4.mapek.ingest import KindWindow, Window

__all__ = ["COUNTERS", "WORSE_WHEN_LOWER", "Monitor", "MonitorReport"]

WORSE_WHEN_LOWER = frozenset({"up", "df", "dr", "links_up", "routes"})
"""Metrics where a drop is the bad direction; for all others a rise is."""
COUNTERS = frozenset({"route_changes", "heal_events", "rejected", "slow_ticks", "drops"})
"""Monotonic counters: judged by their increase per window."""
MESH_KINDS = ("link", "node")


@dataclass
class MonitorReport:
    """What one Monitor pass found."""

    ts: float
    window: Window
    symptoms: list[Symptom] = field(default_factory=list)
    view: MeshView = field(default_factory=MeshView)

    def symptoms_of(self, entity: str) -> list[Symptom]:
        return [s for s in self.symptoms if s.entity == entity]


class Monitor:
    """Judges windows against adaptive baselines.

    Args:
        clock: wall-clock seconds.
        baselines: the per-metric baselines (loaded from Knowledge at start).
        z_threshold: robust z-score from which a value is a symptom.
        stale_after_s: a node silent this long is a symptom (and down in the view).
        history: windows kept for the Trainer's analysis.
    """

    def __init__(
        self,
        clock: Clock,
        baselines: Baselines,
        *,
        z_threshold: float = 6.0,
        stale_after_s: float = 5.0,
        history: int = 120,
    ) -> None:
        self.clock = clock
        self.baselines = baselines
        self.z_threshold = z_threshold
        self.stale_after_s = stale_after_s
        self.history: deque[tuple[float, dict[str, float]]] = deque(maxlen=history)
        self._previous_last: dict[str, np.ndarray] = {}
        self.last_report: MonitorReport | None = None

    def observe(self, window: Window) -> MonitorReport:
        """Judge one closed window; returns its symptoms and the mesh view."""
        now = self.clock()
        report = MonitorReport(now, window)
        row: dict[str, float] = {}
        for kind, kw in window.kinds.items():
            values = self._values(kw)
            baseline, scale, z = self.baselines.judge(kind, kw.entities, kw.metrics, values)
            sign = np.array([-1.0 if m in WORSE_WHEN_LOWER else 1.0 for m in kw.metrics])
            with np.errstate(invalid="ignore"):
                bad = np.nan_to_num(z * sign[None, :], nan=-np.inf) >= self.z_threshold
            for i, j in zip(*np.nonzero(bad), strict=True):
                report.symptoms.append(
                    Symptom(
                        now,
                        kind,
                        kw.entities[i],
                        kw.metrics[j],
                        float(values[i, j]),
                        float(baseline[i, j]),
                        float(scale[i, j]),
                        float(z[i, j] * sign[j]),
                    )
                )
            if kind in MESH_KINDS:
                for i, j in zip(*np.nonzero(~np.isnan(values)), strict=True):
                    row[f"{kw.entities[i]}:{kw.metrics[j]}"] = float(values[i, j])
        report.symptoms.extend(self._silent(window, now))
        report.view = self._view(window, report.symptoms)
        self.history.append((window.end, row))
        self.last_report = report
        return report

    def _values(self, kw: KindWindow) -> np.ndarray:
        """Window means for gauges, increases over the window for counters."""
        values = kw.mean.copy()
        counters = [j for j, m in enumerate(kw.metrics) if m in COUNTERS]
        if counters:
            before = np.full(kw.last.shape, np.nan)
            prev = self._previous_last.get(kw.kind)
            if prev is not None:
                before[: prev.shape[0], : prev.shape[1]] = prev
            with np.errstate(invalid="ignore"):
                rise = kw.last - before
            for j in counters:
                column = np.where((kw.count[:, j] > 0) & (rise[:, j] >= 0), rise[:, j], np.nan)
                values[:, j] = column
            self._previous_last[kw.kind] = kw.last.copy()
        return values

    def _silent(self, window: Window, now: float) -> list[Symptom]:
        nodes = window.kinds.get("node")
        if nodes is None:
            return []
        quiet = now - nodes.last_seen
        return [
            Symptom(
                now,
                "node",
                nodes.entities[i],
                "silent",
                float(quiet[i]),
                0.0,
                0.0,
                self.z_threshold,
            )
            for i in np.flatnonzero(np.isfinite(quiet) & (quiet >= self.stale_after_s))
        ]

    def _view(self, window: Window, symptoms: list[Symptom]) -> MeshView:
        down_links: set[str] = set()
        links = window.kinds.get("link")
        if links is not None and "up" in links.metrics:
            # Down the whole window (a flapping link is degraded, not down).
            col = links.column("up")
            up = np.where(links.count[:, col] > 0, links.mean[:, col], links.last[:, col])
            down_links = {links.entities[i] for i in np.flatnonzero(up == 0.0)}
        down_nodes = {s.entity for s in symptoms if s.metric == "silent"}
        return MeshView(
            down_links=frozenset(down_links),
            down_nodes=frozenset(down_nodes),
            degraded_links=frozenset(
                s.entity for s in symptoms if s.kind == "link" and s.metric != "up"
            ),
            degraded_nodes=frozenset(
                s.entity for s in symptoms if s.kind == "node" and s.metric != "silent"
            ),
        )

    def frame(self) -> pd.DataFrame:
        """The recent windows as a table: rows = window end time, columns ``entity:metric``."""
        if not self.history:
            return pd.DataFrame()
        index = [ts for ts, _ in self.history]
        return pd.DataFrame([row for _, row in self.history], index=index).sort_index(axis=1)
