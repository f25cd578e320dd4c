"""Turn a metrics table and a graph into the model's input: one vertex per node and link.

The mesh is encoded as its incidence graph: every node and every link is a
vertex, and a link vertex is joined to its two end nodes, so one GraphSAGE
layer moves evidence between a node and its links and two layers reach the
neighbouring nodes.  Each vertex's features describe how its metrics changed
around the anomaly start: robust z-scores of the after-window's 20th, 50th
and 80th percentiles against the before-window's median and MAD (a transient
spike moves the 80th percentile only), the log ratio of the means, the share
of missing samples, and the levels before and after.  Metrics outside
:data:`~x0tta6bl4.ml.schema.NODE_METRICS` / ``LINK_METRICS`` still count
through metric-agnostic summary features (largest and mean change, share of
changed metrics, missing share).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from x0tta6bl4.errors import MLError
from x0tta6bl4.mesh.topology import Topology, link_key
from x0tta6bl4.ml.schema import LINK_METRICS, METRIC_FLOOR, NODE_METRICS, split_column

__all__ = [
    "AFTER_S",
    "BEFORE_S",
    "FEATURES",
    "PER_METRIC",
    "SLOTS",
    "CaseGraph",
    "featurize",
    "resolve_graph",
]

SLOTS: tuple[str, ...] = NODE_METRICS + LINK_METRICS
PER_METRIC: tuple[str, ...] = (
    "z50",
    "z80",
    "z20",
    "log_ratio",
    "missing",
    "level_before",
    "level_after",
    "present",
)
SUMMARY: tuple[str, ...] = ("max_abs_z", "mean_abs_z", "changed_share", "missing_share")
FEATURES: tuple[str, ...] = (
    tuple(f"{m}.{f}" for m in SLOTS for f in PER_METRIC)
    + SUMMARY
    + ("is_node", "is_link", "log_degree")
)
"""Names of the input features, in column order."""
BEFORE_S = 40.0
"""Seconds of history before the anomaly start that define normal."""
AFTER_S = 30.0
"""Seconds after the anomaly start that are compared with normal."""
_SLOT = {m: i for i, m in enumerate(SLOTS)}
_DEFAULT_FLOOR = 1e-3

Array = npt.NDArray[np.float64]


@dataclass
class CaseGraph:
    """Model input for one case, plus what explanations need to speak about raw values.

    Shapes:
        x: ``[V, len(FEATURES)]`` float32, one row per entity.
        edge_index: ``[2, 2 * incidences]`` int64, node<->link both ways.
        col_entity: ``[C]`` entity index of each metric column.
        mean_before, mean_after, missing_after: ``[C]`` per metric column.
    """

    entities: list[str]
    is_link: npt.NDArray[np.bool_]
    x: npt.NDArray[np.float32]
    edge_index: npt.NDArray[np.int64]
    col_entity: npt.NDArray[np.int64]
    col_metric: list[str]
    mean_before: Array
    mean_after: Array
    missing_after: Array

    def index(self, entity: str) -> int:
        try:
            return self.entities.index(entity)
        except ValueError:
            raise MLError(f"entity {entity!r} is not in this case's graph") from None

    def neighbours(self, i: int) -> list[int]:
        src, dst = self.edge_index
        return [int(d) for d in dst[src == i]]


def resolve_graph(
    entities: Iterable[str], graph: Topology | Iterable[tuple[str, str]] | None
) -> tuple[list[str], list[tuple[str, str]]]:
    """Nodes and links (as end pairs) from a topology, an edge list, or the entity names.

    Without a graph, an entity named ``a-b`` is the link between nodes ``a``
    and ``b`` and every other entity is a node.
    """
    names = list(dict.fromkeys(entities))
    if isinstance(graph, Topology):
        nodes = graph.names
        pairs = [link.ends for link in graph.links]
    elif graph is not None:
        pairs = []
        for edge in graph:
            if len(edge) != 2 or edge[0] == edge[1]:
                raise MLError(
                    f"graph edge {edge!r} is not a pair of two nodes", fix="pass (a, b) pairs"
                )
            pairs.append((str(edge[0]), str(edge[1])))
        nodes = list(
            dict.fromkeys([n for p in pairs for n in p] + [e for e in names if "-" not in e])
        )
    else:
        pairs = []
        for e in names:
            a, sep, b = e.partition("-")
            if sep and a and b and "-" not in b:
                pairs.append((a, b))
        nodes = list(
            dict.fromkeys([e for e in names if "-" not in e] + [n for p in pairs for n in p])
        )
    pairs = list(dict.fromkeys((min(a, b), max(a, b)) for a, b in pairs))
    return nodes, pairs


def featurize(
    times: Array,
    columns: list[str],
    values: npt.NDArray[np.floating],
    anomaly_start: float,
    graph: Topology | Iterable[tuple[str, str]] | None = None,
) -> CaseGraph:
    """Features of every node and link from a ``[T, C]`` metrics array.

    Args:
        times: ``[T]`` sample times, increasing.
        columns: ``C`` names ``"<entity>:<metric>"``.
        values: ``[T, C]``; NaN where a sample is missing.
        anomaly_start: time (on ``times``' axis) the anomaly began.
        graph: a Topology, an edge list, or None (links named ``a-b``).
    """
    times = np.asarray(times, dtype=np.float64)
    vals = np.asarray(values)
    if vals.ndim != 2 or vals.shape != (len(times), len(columns)):
        raise MLError(
            f"metrics have shape {vals.shape}, expected ({len(times)}, {len(columns)})",
            fix="one row per time, one column per '<entity>:<metric>'",
        )
    if len(times) > 1 and np.any(np.diff(times) <= 0):
        raise MLError("metric times are not strictly increasing", fix="sort the rows by time")
    lay = _layout(tuple(columns), _signature(graph), graph)
    start = int(np.searchsorted(times, anomaly_start))
    dt = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    before_n = max(3, round(BEFORE_S / dt))
    after_n = max(3, round(AFTER_S / dt))
    if start < 3 or start >= len(times):
        raise MLError(
            f"anomaly start {anomaly_start} leaves {start} samples before and "
            f"{len(times) - start} after it",
            fix="give at least 3 samples of normal history and 1 after the start",
        )
    before = vals[max(0, start - before_n) : start].astype(np.float64)
    after = vals[start : start + after_n].astype(np.float64)
    per_col, mean_b, mean_a, miss_a = _column_features(before, after, lay.floor)
    n = len(lay.entities)
    x = np.zeros((n, len(FEATURES)), dtype=np.float64)
    x[lay.slot_rows, lay.slot_cols] = per_col[lay.slot_src].ravel()
    base = len(SLOTS) * len(PER_METRIC)
    absz = np.abs(per_col[:, 0])
    ce = lay.col_entity
    np.maximum.at(x[:, base], ce, absz)
    x[:, base + 1] = np.bincount(ce, absz, n) / lay.col_count
    x[:, base + 2] = np.bincount(ce, (absz > np.log1p(3)).astype(float), n) / lay.col_count
    x[:, base + 3] = np.bincount(ce, miss_a, n) / lay.col_count
    x[:, base + 4] = ~lay.is_link
    x[:, base + 5] = lay.is_link
    x[:, base + 6] = lay.log_degree
    return CaseGraph(
        list(lay.entities),
        lay.is_link,
        x.astype(np.float32),
        lay.edge_index,
        ce,
        list(lay.metrics),
        mean_b,
        mean_a,
        miss_a,
    )


@dataclass(frozen=True)
class _Layout:
    """Everything about a metrics table that depends on its columns and graph only."""

    entities: tuple[str, ...]
    is_link: npt.NDArray[np.bool_]
    col_entity: npt.NDArray[np.int64]
    col_count: Array
    metrics: tuple[str, ...]
    floor: Array
    slot_rows: npt.NDArray[np.int64]
    slot_cols: npt.NDArray[np.int64]
    slot_src: npt.NDArray[np.int64]
    edge_index: npt.NDArray[np.int64]
    log_degree: Array


def _signature(graph: Topology | Iterable[tuple[str, str]] | None) -> Hashable:
    if graph is None:
        return None
    if isinstance(graph, Topology):
        return (tuple(graph.names), tuple(link.key for link in graph.links))
    return tuple(tuple(edge) for edge in graph)


_LAYOUTS: dict[tuple[tuple[str, ...], Hashable], _Layout] = {}


def _layout(columns: tuple[str, ...], signature: Hashable, graph: Any) -> _Layout:
    """The layout of ``columns`` over ``graph``, cached: a mesh keeps its columns."""
    key = (columns, signature)
    cached = _LAYOUTS.get(key)
    if cached is not None:
        return cached
    if isinstance(graph, Iterable) and not isinstance(graph, Topology):
        graph = list(signature)  # type: ignore[call-overload]
    parsed = [split_column(c) for c in columns]
    nodes, pairs = resolve_graph((e for e, _ in parsed), graph)
    entities = nodes + [link_key(a, b) for a, b in pairs]
    index = {e: i for i, e in enumerate(entities)}
    col_entity = np.empty(len(columns), dtype=np.int64)
    for c, (entity, _) in enumerate(parsed):
        i = index.get(entity)
        if i is None and "-" in entity:
            a, _, b = entity.partition("-")
            i = index.get(link_key(a, b))
        if i is None:
            raise MLError(
                f"metric column {columns[c]!r} names {entity!r}, which is not in the graph",
                fix="name nodes and links (a-b) as the graph does, or pass graph=None",
            )
        col_entity[c] = i
    metrics = tuple(m for _, m in parsed)
    width = len(PER_METRIC)
    known = np.array([c for c, m in enumerate(metrics) if m in _SLOT], dtype=np.int64)
    first = np.array([_SLOT[metrics[c]] * width for c in known], dtype=np.int64)
    n_nodes = len(nodes)
    src, dst = [], []
    for li, (a, b) in enumerate(pairs):
        for end in (index[a], index[b]):
            src += [n_nodes + li, end]
            dst += [end, n_nodes + li]
    edge_index = np.array([src, dst], dtype=np.int64).reshape(2, -1)
    is_link = np.zeros(len(entities), dtype=bool)
    is_link[n_nodes:] = True
    layout = _Layout(
        entities=tuple(entities),
        is_link=is_link,
        col_entity=col_entity,
        col_count=np.maximum(np.bincount(col_entity, minlength=len(entities)), 1).astype(float),
        metrics=metrics,
        floor=np.array([METRIC_FLOOR.get(m, _DEFAULT_FLOOR) for m in metrics]),
        slot_rows=np.repeat(col_entity[known], width),
        slot_cols=(first[:, None] + np.arange(width)).ravel(),
        slot_src=known,
        edge_index=edge_index,
        log_degree=np.log1p(np.bincount(edge_index[0], minlength=len(entities))),
    )
    if len(_LAYOUTS) >= 32:
        _LAYOUTS.pop(next(iter(_LAYOUTS)))
    _LAYOUTS[key] = layout
    return layout


def _squash(z: Array) -> Array:
    return np.sign(z) * np.log1p(np.abs(z))


def _column_features(
    before: Array, after: Array, floor: Array
) -> tuple[Array, Array, Array, Array]:
    """``[C, len(PER_METRIC)]`` change features plus before/after means and missing share."""
    present_b = ~np.isnan(before)
    present_a = ~np.isnan(after)
    nb = present_b.sum(axis=0)
    na = present_a.sum(axis=0)
    filled_b = np.where(present_b, before, 0.0)
    filled_a = np.where(present_a, after, 0.0)
    mean_b = filled_b.sum(axis=0) / np.maximum(nb, 1)
    mean_a = filled_a.sum(axis=0) / np.maximum(na, 1)
    sorted_b = _sort_columns(np.where(present_b, before, np.inf))
    med_b = _quantile_sorted(sorted_b, nb, 0.5)
    dev = _sort_columns(np.where(present_b, np.abs(before - med_b), np.inf))
    mad = _quantile_sorted(dev, nb, 0.5)
    scale = np.maximum(1.4826 * mad, floor) + 0.01 * np.abs(med_b)
    sorted_a = _sort_columns(np.where(present_a, after, np.inf))
    q20, q50, q80 = (_quantile_sorted(sorted_a, na, q) for q in (0.2, 0.5, 0.8))
    has_a = na > 0
    z50 = np.where(has_a, (q50 - med_b) / scale, 0.0)
    z80 = np.where(has_a, (q80 - med_b) / scale, 0.0)
    z20 = np.where(has_a, (q20 - med_b) / scale, 0.0)
    ratio = np.where(
        has_a & (nb > 0), np.log((np.abs(mean_a) + floor) / (np.abs(mean_b) + floor)), 0.0
    )
    missing = 1.0 - na / max(after.shape[0], 1)
    level_b = np.log1p(np.abs(med_b) / floor)
    level_a = np.where(has_a, np.log1p(np.abs(q50) / floor), 0.0)
    feats = np.stack(
        [
            _squash(z50),
            _squash(z80),
            _squash(z20),
            ratio,
            missing,
            level_b,
            level_a,
            np.ones_like(z50),
        ],
        axis=1,
    )
    return np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0), mean_b, mean_a, missing


def _sort_columns(a: Array) -> Array:
    """Each column sorted; sorting rows of the transposed copy is much faster for wide tables."""
    return np.sort(np.ascontiguousarray(a.T), axis=1).T


def _quantile_sorted(sorted_cols: Array, counts: npt.NDArray[np.int64], q: float) -> Array:
    """Linear-interpolated quantile of each column's first ``counts`` (sorted) values."""
    pos = np.maximum(counts - 1, 0) * q
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(counts - 1, 0))
    cols = np.arange(sorted_cols.shape[1])
    low, high = sorted_cols[lo, cols], sorted_cols[hi, cols]
    low = np.where(np.isfinite(low), low, 0.0)
    high = np.where(np.isfinite(high), high, low)
    return np.where(counts > 0, low + (high - low) * (pos - lo), np.nan)
