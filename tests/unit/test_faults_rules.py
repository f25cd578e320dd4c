"""Fault words and the nftables text of loss faults (pure)."""

from __future__ import annotations

import pytest

from x0tta6bl4.errors import MeshError
from x0tta6bl4.mesh.faults import (
    FAULT_TABLE,
    ActiveFault,
    chain_name,
    delete_chain_command,
    loss_ruleset,
    parse_fault,
)
from x0tta6bl4.mesh.ports import Fault, FaultKind


def test_partial_loss_uses_numgen_and_full_loss_drops_everything() -> None:
    partial = loss_ruleset("f3", "x0-n4", 30)
    assert f"table netdev {FAULT_TABLE}" in partial
    assert 'hook ingress device "x0-n4" priority -500; policy accept;' in partial
    assert "numgen random mod 100 < 30 drop" in partial
    full = loss_ruleset("f3", "x0-n4", 100)
    assert "numgen" not in full and "counter drop" in full


def test_chain_names_are_nft_identifiers_and_deletion_targets_the_same_chain() -> None:
    assert chain_name("f12", "x0-n4.b") == "f12_x0_n4_b"
    assert chain_name("f12", "x0-n4") in loss_ruleset("f12", "x0-n4", 50)
    assert delete_chain_command("f12", "x0-n4") == (
        f"delete chain netdev {FAULT_TABLE} f12_x0_n4\n"
    )


@pytest.mark.parametrize("percent", [0, -5, 101])
def test_loss_outside_0_100_is_refused(percent: float) -> None:
    with pytest.raises(MeshError, match="loss must be in"):
        loss_ruleset("f1", "x0-n1", percent)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("link-down", ["n1", "n2"], None), Fault(FaultKind.LINK_DOWN, ("n1", "n2"))),
        (("loss", ["n1", "n2"], "30%"), Fault(FaultKind.LOSS, ("n1", "n2"), 30.0)),
        (("delay", ["n1", "n2"], "50ms"), Fault(FaultKind.DELAY, ("n1", "n2"), 50.0)),
        (("node-crash", ["n3"], None), Fault(FaultKind.NODE_CRASH, ("n3",))),
        (("partition", ["n1,n2,n3"], None), Fault(FaultKind.PARTITION, ("n1", "n2", "n3"))),
    ],
)
def test_fault_words_parse(words: tuple[str, list[str], str | None], expected: Fault) -> None:
    assert parse_fault(*words) == expected


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (("explode", ["n1"], None), "unknown fault"),
        (("link-down", ["n1"], None), "takes 2 node"),
        (("node-crash", ["n1", "n2"], None), "takes 1 node"),
        (("loss", ["n1", "n2"], None), "needs a value"),
        (("loss", ["n1", "n2"], "lots"), "not a number"),
        (("loss", ["n1", "n2"], "150%"), "loss must be in"),
        (("delay", ["n1", "n2"], "0ms"), "delay must be > 0"),
    ],
)
def test_bad_fault_words_say_what_is_wrong(
    words: tuple[str, list[str], str | None], message: str
) -> None:
    with pytest.raises(MeshError, match=message) as info:
        parse_fault(*words)
    assert info.value.fix


def test_active_fault_describes_itself() -> None:
    fault = ActiveFault("f2", Fault(FaultKind.LOSS, ("n1", "n2"), 30.0), 0.0)
    assert fault.describe() == "f2: loss n1 n2 30%"
    crash = ActiveFault("f3", Fault(FaultKind.NODE_CRASH, ("n1",)), 0.0)
    assert crash.describe() == "f3: node-crash n1"
