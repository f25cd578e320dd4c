"""Fault cases for RCA: the on-disk format, the statistical twin, datasets, the recorder."""

from __future__ import annotations

from x0tta6bl4.ml.scenarios.case import CASE_FORMAT_VERSION, Case, Label, load_case, save_case
from x0tta6bl4.ml.scenarios.dataset import (
    HELDOUT_SPEC,
    TRAIN_SPEC,
    DatasetSpec,
    dataset_hash,
    generate_dataset,
    read_dataset,
    write_dataset,
)
from x0tta6bl4.ml.scenarios.twin import TwinConfig, generate_case

__all__ = [
    "CASE_FORMAT_VERSION",
    "HELDOUT_SPEC",
    "TRAIN_SPEC",
    "Case",
    "DatasetSpec",
    "Label",
    "TwinConfig",
    "dataset_hash",
    "generate_case",
    "generate_dataset",
    "load_case",
    "read_dataset",
    "save_case",
    "write_dataset",
]
