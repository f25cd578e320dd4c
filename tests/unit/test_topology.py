from __future__ import annotations

import pytest

from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mesh.topology import Link, Node, Topology, generate, grid, ring, waxman


@pytest.mark.parametrize("kind", ["ring", "ring_chords", "grid", "waxman"])
@pytest.mark.parametrize("n", [4, 16, 50])
def test_generators_are_connected_and_sized(kind: str, n: int) -> None:
    topo = generate(kind, n, seed=7)
    assert len(topo.components()) == 1
    assert len(topo) >= n if kind == "grid" else len(topo) == n


def test_same_seed_same_graph_other_seed_other_graph() -> None:
    assert waxman(40, seed=3).links == waxman(40, seed=3).links
    assert waxman(40, seed=3).links != waxman(40, seed=4).links


def test_json_round_trip(tmp_path) -> None:
    topo = generate("waxman", 20, seed=2)
    path = tmp_path / "t.json"
    topo.save(path)
    again = Topology.load(path)
    assert again.links == topo.links and again.nodes == topo.nodes


def test_link_is_canonical_and_other_end() -> None:
    link = Link("n9", "n3")
    assert (link.a, link.b, link.key) == ("n3", "n9", "n3-n9")
    assert link.other("n3") == "n9"


@pytest.mark.parametrize(
    ("nodes", "links", "match"),
    [
        (["a", "b"], [("a", "c")], "unknown node c"),
        (["a", "b"], [("a", "b"), ("b", "a")], "duplicate link a-b"),
        (["a", "a"], [], "duplicate node names: a"),
        (["a", "b", "c"], [("a", "b")], "disconnected into 2 parts"),
        (["a"], [("a", "a")], "joins a node to itself"),
    ],
)
def test_invalid_topologies_name_the_problem(nodes, links, match) -> None:
    with pytest.raises(TopologyError, match=match):
        Topology([Node(n) for n in nodes], [Link(a, b) for a, b in links])


def test_disconnected_allowed_when_asked() -> None:
    topo = Topology([Node("a"), Node("b")], [], require_connected=False)
    assert len(topo.components()) == 2


def test_components_without_a_link_and_a_node() -> None:
    topo = ring(6)
    assert len(topo.components(without_links=["n0-n1"])) == 1
    assert len(topo.components(without_links=["n0-n1", "n3-n4"])) == 2
    assert len(grid(3).components(without_nodes=["n1", "n3"])) == 2


def test_bad_json_and_version(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TopologyError, match="not JSON"):
        Topology.load(bad)
    with pytest.raises(TopologyError, match="version 9"):
        Topology.from_dict({"version": 9, "nodes": [], "links": []})
    with pytest.raises(TopologyError, match="unknown topology generator"):
        generate("star", 5)
