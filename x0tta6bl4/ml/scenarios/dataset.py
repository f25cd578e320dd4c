"""Datasets of twin cases: a spec, a seeded generator, and a directory of cases on disk.

A dataset directory holds ``manifest.json`` (format version, the spec, the
content hash) and one case directory per case (``c00000``, ...).  The same
spec, seed included, gives the same cases byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from x0tta6bl4.errors import MLError, TopologyError
from x0tta6bl4.mesh.topology import GENERATORS, generate
from x0tta6bl4.ml.scenarios.case import CASE_FORMAT_VERSION, Case, load_case, save_case
from x0tta6bl4.ml.scenarios.twin import TwinConfig, generate_case
from x0tta6bl4.ml.schema import FaultKind

__all__ = [
    "ALL_FAULTS",
    "HELDOUT_SPEC",
    "TRAIN_SPEC",
    "DatasetSpec",
    "dataset_hash",
    "generate_dataset",
    "iter_dataset",
    "read_dataset",
    "write_dataset",
]

ALL_FAULTS: tuple[FaultKind, ...] = tuple(k for k in FaultKind if k is not FaultKind.NONE)


@dataclass(frozen=True)
class DatasetSpec:
    """What to generate.

    Args:
        cases: number of cases.
        seed: master seed; case ``i`` draws from ``default_rng([seed, i])``.
        families: topology generators, used in turn.
        min_nodes: smallest topology.
        max_nodes: largest topology.
        kinds: fault kinds, used in turn (balanced).
        none_fraction: share of cases with no fault (normal fluctuations only).
        topology_seed_base: offset of the generators' seeds, so that two specs
            with different bases never share a random topology.
        twin: shape of each case.
    """

    cases: int
    seed: int = 0
    families: tuple[str, ...] = ("waxman", "ring_chords")
    min_nodes: int = 8
    max_nodes: int = 32
    kinds: tuple[FaultKind, ...] = ALL_FAULTS
    none_fraction: float = 0.1
    topology_seed_base: int = 0
    twin: TwinConfig = field(default_factory=TwinConfig)

    def __post_init__(self) -> None:
        unknown = [f for f in self.families if f not in GENERATORS]
        if unknown or not self.families:
            raise MLError(
                f"unknown topology families {unknown or '(none given)'}",
                fix=f"use some of {', '.join(sorted(GENERATORS))}",
            )
        if not 2 <= self.min_nodes <= self.max_nodes:
            raise MLError(
                f"node range {self.min_nodes}..{self.max_nodes} is empty or below 2",
                fix="give 2 <= min_nodes <= max_nodes",
            )
        if self.cases < 1 or not self.kinds or not 0 <= self.none_fraction < 1:
            raise MLError(
                "a dataset needs >= 1 case, >= 1 fault kind and none_fraction in [0, 1)",
                fix="correct the dataset spec",
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = [str(k) for k in self.kinds]
        return data


TRAIN_SPEC = DatasetSpec(cases=900, seed=0, families=("waxman", "ring_chords"), max_nodes=32)
"""The default training set: random Waxman and ring-with-chords meshes of 8-32 nodes."""
HELDOUT_SPEC = DatasetSpec(
    cases=240,
    seed=1_000_003,
    families=("grid", "ring", "waxman"),
    min_nodes=12,
    max_nodes=60,
    topology_seed_base=10_000_000,
)
"""Held-out evaluation: two families never trained on, Waxman graphs of unseen seeds and sizes."""


def iter_dataset(spec: DatasetSpec) -> Iterator[Case]:
    """Yield the spec's cases in order (each independent of the others)."""
    for i in range(spec.cases):
        rng = np.random.default_rng([spec.seed, i])
        family = spec.families[i % len(spec.families)]
        nodes = int(rng.integers(spec.min_nodes, spec.max_nodes + 1))
        topo_seed = spec.topology_seed_base + int(rng.integers(1_000_000))
        try:
            topology = generate(family, nodes, seed=topo_seed)
        except TopologyError as exc:
            raise MLError(f"case {i}: {exc.message}", fix=exc.fix) from exc
        if rng.random() < spec.none_fraction:
            kind = FaultKind.NONE
        else:
            kind = spec.kinds[i % len(spec.kinds)]
        case = generate_case(topology, kind, rng, spec.twin)
        case.meta = {
            "family": family,
            "nodes": len(topology),
            "topology_seed": topo_seed,
            "index": i,
        }
        yield case


def generate_dataset(
    spec: DatasetSpec, progress: Callable[[int], None] | None = None
) -> list[Case]:
    """All cases of ``spec`` in memory; ``progress(done)`` is called after each."""
    cases = []
    for case in iter_dataset(spec):
        cases.append(case)
        if progress is not None:
            progress(len(cases))
    return cases


def dataset_hash(cases: list[Case]) -> str:
    """Content hash of a list of cases (graph, metrics and labels), 16 hex digits."""
    h = hashlib.sha256()
    for case in cases:
        h.update(case.digest().encode())
    return h.hexdigest()[:16]


def write_dataset(
    cases: list[Case],
    directory: Path | str,
    spec: DatasetSpec | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write cases as ``c00000``... plus ``manifest.json``; returns the directory."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for i, case in enumerate(cases):
        name = f"c{i:05d}"
        save_case(case, root / name)
        names.append(name)
        if progress is not None:
            progress(i + 1)
    manifest = {
        "format_version": CASE_FORMAT_VERSION,
        "spec": spec.to_dict() if spec else None,
        "hash": dataset_hash(cases),
        "cases": names,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return root


def read_dataset(directory: Path | str) -> list[Case]:
    """Read a dataset directory (its manifest's case list, or every case sub-directory)."""
    root = Path(directory)
    manifest = root / "manifest.json"
    if manifest.is_file():
        names = json.loads(manifest.read_text(encoding="utf-8")).get("cases", [])
    else:
        names = (
            sorted(p.name for p in root.iterdir() if (p / "label.json").is_file())
            if root.is_dir()
            else []
        )
    if not names:
        raise MLError(
            f"{root} holds no cases",
            fix="generate some with `x0tta6bl4 ml dataset --out DIR`",
        )
    return [load_case(root / name) for name in names]
