"""The digital twin: a mirror of the live mesh that answers what-if questions.

twin = DigitalTwin(topology)
twin.mirror(down_links=["n1-n2"])          # the live state
result = twin.what_if(fail_links=["n3-n4"])
result.lost_pairs, result.changed_pairs, result.partitions, result.load_shift
"""

from __future__ import annotations

from x0tta6bl4.twin._result import PairChange, WhatIfResult
from x0tta6bl4.twin._twin import DEFAULT_MAX_NODES, DigitalTwin, LinkSpec, Traffic, TwinState
from x0tta6bl4.twin.service import TwinService, mesh_topology

__all__ = [
    "DEFAULT_MAX_NODES",
    "DigitalTwin",
    "LinkSpec",
    "PairChange",
    "Traffic",
    "TwinService",
    "TwinState",
    "WhatIfResult",
    "mesh_topology",
]
