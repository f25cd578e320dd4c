"""Twin scenarios and the case format: round-trip, reproducibility, symptoms, errors."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from x0tta6bl4.errors import MLError
from x0tta6bl4.mesh.ports import Fault
from x0tta6bl4.mesh.ports import FaultKind as MeshFault
from x0tta6bl4.mesh.topology import generate, ring
from x0tta6bl4.ml.scenarios import (
    TRAIN_SPEC,
    dataset_hash,
    generate_case,
    generate_dataset,
    load_case,
    read_dataset,
    save_case,
    write_dataset,
)
from x0tta6bl4.ml.scenarios.record import fault_label, record_case
from x0tta6bl4.ml.schema import FaultKind

SMALL = replace(TRAIN_SPEC, cases=7, max_nodes=14)


def _mean(case, col, after):
    i = case.columns.index(col)
    start = int(case.label.start_s)
    window = case.values[start + 5 : start + 30, i] if after else case.values[start - 30 : start, i]
    return float(np.nanmean(window)) if not np.isnan(window).all() else float("nan")


def test_dataset_round_trip(tmp_path):
    cases = generate_dataset(SMALL)
    write_dataset(cases, tmp_path / "ds", SMALL)
    back = read_dataset(tmp_path / "ds")
    assert [c.label for c in back] == [c.label for c in cases]
    assert dataset_hash(back) == dataset_hash(cases)
    np.testing.assert_array_equal(back[3].values, cases[3].values)
    assert back[3].topology.to_dict() == cases[3].topology.to_dict()
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["hash"] == dataset_hash(cases) and manifest["spec"]["cases"] == 7


def test_same_seed_same_dataset_other_seed_other():
    assert dataset_hash(generate_dataset(SMALL)) == dataset_hash(generate_dataset(SMALL))
    assert dataset_hash(generate_dataset(replace(SMALL, seed=1))) != dataset_hash(
        generate_dataset(SMALL)
    )


def test_csv_metrics_are_read_too(tmp_path):
    case = generate_dataset(replace(SMALL, cases=1))[0]
    save_case(case, tmp_path / "c")
    (tmp_path / "c" / "metrics.npz").unlink()
    case.frame().to_csv(tmp_path / "c" / "metrics.csv.gz")
    back = load_case(tmp_path / "c")
    np.testing.assert_allclose(back.values, case.values, rtol=1e-6)
    assert back.columns == case.columns


@pytest.mark.parametrize(
    ("kind", "column", "rises"),
    [
        (FaultKind.LINK_LOSS, "{loc}:loss", True),
        (FaultKind.LINK_DELAY, "{loc}:rtt_ms", True),
        (FaultKind.NODE_OVERLOAD, "{loc}:cpu", True),
        (FaultKind.CONGESTION, "{loc}:loss", True),
    ],
)
def test_faults_show_at_their_location(kind, column, rises):
    rng = np.random.default_rng(11)
    case = generate_case(generate("waxman", 16, seed=4), kind, rng)
    col = column.format(loc=case.label.location)
    before, after = _mean(case, col, False), _mean(case, col, True)
    assert (after > before) == rises, (col, before, after)


@pytest.mark.parametrize("seed", [3, 4, 5, 6])
def test_crash_cuts_the_node_off_and_kills_its_links(seed):
    case = generate_case(generate("grid", 16), FaultKind.NODE_CRASH, np.random.default_rng(seed))
    node = case.label.location
    assert _mean(case, f"{node}:links_up", False) >= 2
    silent = np.isnan(_mean(case, f"{node}:cpu", True))
    assert silent or _mean(case, f"{node}:links_up", True) == 0
    link = next(lk.key for lk in case.topology.links if node in lk.ends)
    assert _mean(case, f"{link}:loss", True) == pytest.approx(1.0)


def test_blackhole_reports_normal_but_its_links_lose_traffic():
    case = generate_case(generate("grid", 16), FaultKind.BLACKHOLE, np.random.default_rng(5))
    node = case.label.location
    cpu_b, cpu_a = _mean(case, f"{node}:cpu", False), _mean(case, f"{node}:cpu", True)
    assert abs(cpu_a - cpu_b) < 10  # it lies about being fine
    links = [lk.key for lk in case.topology.links if node in lk.ends]
    drops = [
        _mean(case, f"{k}:mbps", True) / max(_mean(case, f"{k}:mbps", False), 1e-9) for k in links
    ]
    assert min(drops) < 0.5


def test_load_case_errors(tmp_path):
    with pytest.raises(MLError, match="not a directory"):
        load_case(tmp_path / "nope")
    case = generate_dataset(replace(SMALL, cases=1))[0]
    save_case(case, tmp_path / "c")
    label = json.loads((tmp_path / "c" / "label.json").read_text())
    label["format_version"] = 99
    (tmp_path / "c" / "label.json").write_text(json.dumps(label))
    with pytest.raises(MLError, match="format version 99"):
        load_case(tmp_path / "c")


def test_bad_spec_is_refused():
    with pytest.raises(MLError, match="unknown topology families"):
        replace(TRAIN_SPEC, families=("torus",))


class _Backend:
    """A backend whose faults change what the metrics source reports (no kernel needed)."""

    kind = "test"

    def __init__(self):
        self.active: list[Fault] = []

    def up(self, topology):
        pass

    def down(self):
        pass

    def inject(self, fault):
        self.active.append(fault)

    def heal(self, fault):
        self.active.remove(fault)

    def reachable(self, src, dst):
        return True


def test_record_case_labels_and_heals():
    topo, backend, now = ring(4), _Backend(), [0.0]

    def source():
        lossy = any(f.kind is MeshFault.LOSS for f in backend.active)
        return {"n0-n1:loss": 0.3 if lossy else 0.0, "n0:cpu": 10.0}

    def sleep(s):
        now[0] += max(s, 0.0) + 1e-3

    fault = Fault(MeshFault.LOSS, ("n1", "n0"), 30.0)
    case = record_case(
        backend, topo, fault, source, before_s=10, after_s=5, clock=lambda: now[0], sleep=sleep
    )
    assert backend.active == []
    assert case.label.kind is FaultKind.LINK_LOSS and case.label.location == "n0-n1"
    assert case.label.severity == pytest.approx(0.3)
    frame = case.frame()
    assert frame.loc[frame.index < case.label.start_s, "n0-n1:loss"].max() == 0.0
    assert frame.loc[frame.index > case.label.start_s, "n0-n1:loss"].min() == pytest.approx(0.3)
    assert isinstance(frame, pd.DataFrame) and frame.index.is_monotonic_increasing


def test_partition_has_no_single_location():
    with pytest.raises(MLError, match="no single root-cause location"):
        fault_label(Fault(MeshFault.PARTITION, ("n0", "n1")))
