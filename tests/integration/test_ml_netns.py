"""Fault cases recorded on the real netns mesh (namespaces, veth, hellos, nftables loss)."""

from __future__ import annotations

import os

import pytest

from x0tta6bl4.mesh.netns import clean
from x0tta6bl4.mesh.ports import Fault, FaultKind
from x0tta6bl4.mesh.topology import ring
from x0tta6bl4.ml.scenarios import load_case, save_case
from x0tta6bl4.ml.scenarios.live import record_netns_cases
from x0tta6bl4.ml.schema import FaultKind as MlFault

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_records_a_loss_case_on_the_netns_mesh(tmp_path):
    run_id = f"ml{os.getpid() % 100000}"
    try:
        cases = record_netns_cases(
            ring(4),
            [Fault(FaultKind.LOSS, ("n1", "n0"), 40.0)],
            tmp_path,
            run_id=run_id,
            before_s=6,
            after_s=5,
            interval_s=0.25,
        )
    finally:
        clean(tmp_path, run_id)
    case = cases[0]
    assert case.source == "netns"
    assert (case.label.kind, case.label.location) == (MlFault.LINK_LOSS, "n0-n1")
    frame = case.frame()
    lossy = frame["n0-n1:loss"]
    lossy_after = lossy[lossy.index > case.label.start_s + 2].mean()
    assert lossy_after > 0.15
    # A busy host (and link start-up) delays some hellos on every link, so the clean
    # periods are judged against the fault: the loss must sit where and when it was injected.
    assert lossy[lossy.index < case.label.start_s].mean() < lossy_after / 2
    quiet = frame["n2-n3:loss"]
    assert quiet[quiet.index > case.label.start_s + 2].mean() < lossy_after / 3
    save_case(case, tmp_path / "case")
    assert load_case(tmp_path / "case").label == case.label
