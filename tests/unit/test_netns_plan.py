"""The addressing plan, the echo stream's gap arithmetic and cleanup naming (pure)."""

from __future__ import annotations

import ipaddress

import pytest

from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mesh.addressing import (
    LINK_NET,
    LOOPBACK_NET,
    namespace_name,
    new_run_id,
    parse_namespace,
    plan,
    validate_run_id,
)
from x0tta6bl4.mesh.echo import longest_gap
from x0tta6bl4.mesh.service import node_specs
from x0tta6bl4.mesh.topology import Link, Node, Topology, ring_chords


def test_plan_gives_each_link_a_31_and_each_node_a_loopback() -> None:
    topo = ring_chords(16)
    p = plan(topo, "abc123")
    assert len(set(p.loopbacks.values())) == 16
    assert all(ipaddress.ip_address(a) in LOOPBACK_NET for a in p.loopbacks.values())
    seen: set[str] = set()
    for link in p.links.values():
        net = ipaddress.ip_network(f"{link.a.address}/31", strict=True)
        assert net.subnet_of(LINK_NET)
        assert {link.a.address, link.b.address} == {str(h) for h in net}
        assert link.a.peer_address == link.b.address and link.b.peer_address == link.a.address
        assert not seen & {link.a.address, link.b.address}
        seen |= {link.a.address, link.b.address}


def test_interface_names_fit_ifnamsiz_and_are_unique_per_node() -> None:
    long_name = "a" * 20
    topo = Topology(
        [Node("n0"), Node(long_name), Node("n2")],
        [Link("n0", long_name), Link("n0", "n2"), Link(long_name, "n2")],
    )
    p = plan(topo, "r1")
    for node in topo.names:
        names = [end.ifname for end in p.ends(node).values()]
        assert len(names) == len(set(names))
        assert all(len(n) <= 15 for n in names)
    assert p.ends("n0")["n2"].ifname == "x0-n2"
    assert p.ends("n0")[long_name].ifname.startswith("x0l")


def test_plan_is_deterministic_and_namespaces_carry_the_run_id() -> None:
    topo = ring_chords(6)
    assert plan(topo, "r1") == plan(topo, "r1")
    p = plan(topo, "r1")
    assert p.namespaces["n3"] == "x0-r1-n3" == namespace_name("r1", "n3")
    assert parse_namespace("x0-r1-n3") == ("r1", "n3")
    assert parse_namespace("x0ebpf-7") is None
    assert parse_namespace("other-r1-n3") is None


@pytest.mark.parametrize("bad", ["", "UPPER", "has-dash", "x" * 11, "a/b"])
def test_bad_run_ids_are_refused(bad: str) -> None:
    with pytest.raises(TopologyError, match="run id"):
        validate_run_id(bad)


def test_fresh_run_ids_are_valid_and_differ() -> None:
    ids = {new_run_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(validate_run_id(i) == i for i in ids)


def test_node_names_that_cannot_name_a_namespace_are_refused() -> None:
    topo = Topology([Node("a-b"), Node("c")], [Link("a-b", "c")])
    with pytest.raises(TopologyError, match="cannot name a namespace"):
        plan(topo, "r1")


def test_node_specs_match_the_plan() -> None:
    topo = ring_chords(6)
    p = plan(topo, "r1")
    specs = node_specs(topo, p)
    spec = specs["n0"]
    assert spec.netns == "x0-r1-n0" and spec.loopback == p.loopbacks["n0"]
    assert set(spec.links) == set(topo.neighbors("n0"))
    for peer, link in spec.links.items():
        other = specs[peer].links["n0"]
        assert link.peer_address == other.address and other.peer_address == link.address
    assert spec.destinations == p.loopbacks


def test_longest_gap_counts_from_the_last_reply_before_the_fault() -> None:
    replies = [0.00, 0.01, 0.02, 0.03, 0.12, 0.13, 0.14]
    assert longest_gap(replies, start=0.035, end=0.14) == pytest.approx(0.09)
    # A fault at 0.5 with no reply since: the whole time to the end is outage.
    assert longest_gap(replies, start=0.5, end=0.9) == pytest.approx(0.9 - 0.14)
    # Nothing lost: the gap is the cadence.
    steady = [i * 0.01 for i in range(50)]
    assert longest_gap(steady, start=0.2, end=0.49) == pytest.approx(0.01)
