"""Check the twin against a real mesh: predicted reachability versus observed.

Used by the integration tests and ``benchmarks/twin.py`` with the simulator
(whose ``reachable`` follows the installed routes) and with the netns mesh
(whose ``reachable`` sends a real ICMP echo).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from x0tta6bl4.mesh.ports import Fault, FaultKind
from x0tta6bl4.twin._result import WhatIfResult

__all__ = ["Mismatch", "faults_of", "mismatches", "observe", "settle"]

Reachability = dict[tuple[str, str], bool]


@dataclass(frozen=True)
class Mismatch:
    src: str
    dst: str
    predicted: bool
    observed: bool


def faults_of(fail_links: Sequence[tuple[str, str]], fail_nodes: Sequence[str]) -> list[Fault]:
    """The backend faults that realise a what-if scenario."""
    return [Fault(FaultKind.LINK_DOWN, ends) for ends in fail_links] + [
        Fault(FaultKind.NODE_CRASH, (node,)) for node in fail_nodes
    ]


def observe(reachable: Callable[[str, str], bool], names: Sequence[str]) -> Reachability:
    """Observed reachability of every unordered pair, both directions required."""
    return {
        (a, b): reachable(a, b) and reachable(b, a)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


def settle(
    probe: Callable[[], Reachability],
    *,
    min_wait_s: float,
    timeout_s: float,
    step: Callable[[float], None] = time.sleep,
) -> Reachability:
    """Wait ``min_wait_s`` for the mesh to converge, then probe until two probes in a
    row agree (the mesh is stable) or ``timeout_s`` passed; returns the last probe.

    ``step(seconds)`` advances time (a sleep, or the simulator's ``run``).
    """
    step(min_wait_s)
    waited = min_wait_s
    last = probe()
    while waited < timeout_s:
        step(0.5)
        waited += 0.5
        now = probe()
        if now == last:
            return now
        last = now
    return last


def mismatches(result: WhatIfResult, observed: Reachability) -> list[Mismatch]:
    """Pairs where the twin's predicted reachability differs from the observed one."""
    return [
        Mismatch(a, b, result.reachable(a, b), seen)
        for (a, b), seen in sorted(observed.items())
        if result.reachable(a, b) != seen
    ]
