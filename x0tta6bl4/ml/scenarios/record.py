"""Record a fault case from a live mesh: sample metrics, inject a fault, sample, heal.

Works with any :class:`~x0tta6bl4.mesh.ports.Backend` (the netns mesh, the
simulator) and any metrics source, a callable returning one sample
``{"<entity>:<metric>": value}`` (link RTT and loss from the probers,
counters from the eBPF agents).  The fault is always healed, also when
sampling fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from x0tta6bl4 import loggers
from x0tta6bl4.errors import MLError
from x0tta6bl4.mesh.ports import Backend, Fault
from x0tta6bl4.mesh.ports import FaultKind as MeshFault
from x0tta6bl4.mesh.topology import Topology, link_key
from x0tta6bl4.ml.scenarios.case import Case, Label
from x0tta6bl4.ml.schema import FaultKind, split_column

__all__ = ["MetricsSource", "fault_label", "record_case"]

log = loggers.ml
MetricsSource = Callable[[], Mapping[str, float]]


def fault_label(fault: Fault) -> tuple[FaultKind, str, float]:
    """The RCA label of a mesh fault: kind, location (node or link key), severity."""
    if fault.kind in (MeshFault.LOSS, MeshFault.LINK_DOWN, MeshFault.DELAY):
        if len(fault.targets) != 2:
            raise MLError(
                f"a {fault.kind} fault needs two nodes, got {fault.targets}",
                fix="name both link ends",
            )
        where = link_key(*fault.targets)
        if fault.kind is MeshFault.DELAY:
            return FaultKind.LINK_DELAY, where, fault.value
        return (
            FaultKind.LINK_LOSS,
            where,
            1.0 if fault.kind is MeshFault.LINK_DOWN else fault.value / 100,
        )
    if fault.kind is MeshFault.NODE_CRASH and len(fault.targets) == 1:
        return FaultKind.NODE_CRASH, fault.targets[0], 1.0
    raise MLError(
        f"a {fault.kind} fault on {fault.targets} has no single root-cause location",
        fix="record loss, delay, link-down or node-crash faults",
    )


def record_case(
    backend: Backend,
    topology: Topology,
    fault: Fault,
    source: MetricsSource,
    *,
    before_s: float = 45.0,
    after_s: float = 35.0,
    interval_s: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Case:
    """Sample ``source`` every ``interval_s`` for ``before_s``, inject ``fault``, sample
    ``after_s`` more, heal; the backend must already be up with ``topology``."""
    kind, location, severity = fault_label(fault)
    if before_s < 4 * interval_s or after_s < 2 * interval_s:
        raise MLError(
            "record at least 4 samples before and 2 after the fault", fix="raise before_s/after_s"
        )
    rows: list[tuple[float, Mapping[str, float]]] = []
    origin = clock()
    injected_at: float | None = None

    def sample_until(deadline: float) -> None:
        next_tick = clock()
        while next_tick < deadline:
            sleep(max(0.0, next_tick - clock()))
            rows.append((clock() - origin, dict(source())))
            next_tick += interval_s

    try:
        sample_until(origin + before_s)
        backend.inject(fault)
        injected_at = clock() - origin
        log.info("fault_recording", fault=str(fault.kind), location=location, at_s=injected_at)
        sample_until(origin + injected_at + after_s)
    finally:
        if injected_at is not None:
            backend.heal(fault)
    columns = sorted({key for _, row in rows for key in row})
    for name in columns:
        split_column(name)
    values = np.full((len(rows), len(columns)), np.nan, dtype=np.float32)
    index = {c: i for i, c in enumerate(columns)}
    for r, (_, row) in enumerate(rows):
        for key, value in row.items():
            values[r, index[key]] = value
    times = np.array([t for t, _ in rows], dtype=np.float64)
    label = Label(kind, location, float(injected_at or 0.0), float(severity))
    return Case(
        topology,
        times,
        columns,
        values,
        label,
        source=getattr(backend, "kind", "live"),
        meta={"recorded": True},
    )
