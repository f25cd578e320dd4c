"""The twin's incremental answers equal a from-scratch recomputation of the scenario."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict

import numpy as np
import pytest
from scipy.sparse import csr_array
from scipy.sparse.csgraph import dijkstra

from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mesh.topology import Link, Node, Topology, generate, grid, ring
from x0tta6bl4.twin import DigitalTwin


def _unique_costs(topo: Topology, seed: int) -> Topology:
    """Same graph with distinct random costs, so every shortest path is unique."""
    rng = random.Random(seed)
    links = [Link(link.a, link.b, cost=1 + rng.random()) for link in topo.links]
    return Topology(topo.nodes, links)


class Reference:
    """Shortest paths recomputed from scratch, paths walked in Python."""

    def __init__(self, topo, down_links=(), down_nodes=(), costs=None):
        self.names = topo.names
        self.index = {n: i for i, n in enumerate(self.names)}
        self.alive = [n not in set(down_nodes) for n in self.names]
        costs = costs or {}
        rows, cols, vals = [], [], []
        self.links = {}
        for link in topo.links:
            self.links[(link.a, link.b)] = self.links[(link.b, link.a)] = link.key
            if link.key in down_links or link.a in down_nodes or link.b in down_nodes:
                continue
            rows.append(self.index[link.a])
            cols.append(self.index[link.b])
            vals.append(costs.get(link.key, link.cost))
        n = len(self.names)
        graph = csr_array((vals, (rows, cols)), shape=(n, n))
        self.dist, self.pred = dijkstra(graph, directed=False, return_predecessors=True)

    def reachable(self, a, b):
        i, j = self.index[a], self.index[b]
        return self.alive[i] and self.alive[j] and np.isfinite(self.dist[i, j])

    def path(self, a, b):
        i, j = self.index[a], self.index[b]
        nodes = [j]
        while nodes[-1] != i:
            nodes.append(self.pred[i, nodes[-1]])
        return [self.names[k] for k in reversed(nodes)]

    def loads(self):
        load = defaultdict(float)
        for a in self.names:
            for b in self.names:
                if a != b and self.reachable(a, b):
                    p = self.path(a, b)
                    for x, y in itertools.pairwise(p):
                        load[self.links[(x, y)]] += 1
        return load


def _check(topo, before: dict, scenario: dict, after: dict) -> None:
    twin = DigitalTwin(topo)
    twin.mirror(**before)
    result = twin.what_if(**scenario)
    ref0, ref1 = Reference(topo, **_as_ref(before)), Reference(topo, **_as_ref(after))
    names = topo.names
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    alive = [(a, b) for a, b in pairs if ref1.alive[ref1.index[a]] and ref1.alive[ref1.index[b]]]

    lost = {(a, b) for a, b in alive if ref0.reachable(a, b) and not ref1.reachable(a, b)}
    assert set(result.lost_pairs) == lost
    changed = {
        (a, b): (ref0.dist[ref0.index[a], ref0.index[b]], ref1.dist[ref1.index[a], ref1.index[b]])
        for a, b in alive
        if ref0.reachable(a, b)
        and ref1.reachable(a, b)
        and (
            ref0.path(a, b) != ref1.path(a, b)
            or ref0.dist[ref0.index[a], ref0.index[b]] != ref1.dist[ref1.index[a], ref1.index[b]]
        )
    }
    got = {(c.src, c.dst): (c.old_cost, c.new_cost) for c in result.changed_pairs}
    assert got.keys() == changed.keys()
    for pair, (old, new) in changed.items():
        assert got[pair] == pytest.approx((old, new))
    for a, b in pairs:
        assert result.reachable(a, b) == bool(ref1.reachable(a, b)), (a, b)

    load0, load1 = ref0.loads(), ref1.loads()
    expected_shift = {k: load1[k] - load0[k] for k in set(load0) | set(load1)}
    expected_shift = {k: v for k, v in expected_shift.items() if v}
    assert result.load_shift == pytest.approx(expected_shift)
    assert result.load_unit == "pairs"
    assert result.reachable_pairs_after == sum(ref1.reachable(a, b) for a, b in pairs)
    assert result.reachable_pairs_before == sum(ref0.reachable(a, b) for a, b in pairs)


def _as_ref(state: dict) -> dict:
    return {
        "down_links": set(state.get("down_links", ())),
        "down_nodes": set(state.get("down_nodes", ())),
        "costs": dict(state.get("costs", {})),
    }


def _after(topo, before, scenario):
    down_links = set(before.get("down_links", ())) | set(scenario.get("fail_links", ()))
    down_links -= set(scenario.get("restore_links", ()))
    down_nodes = set(before.get("down_nodes", ())) | set(scenario.get("fail_nodes", ()))
    down_nodes -= set(scenario.get("restore_nodes", ()))
    costs = {**before.get("costs", {}), **scenario.get("set_costs", {})}
    return {"down_links": down_links, "down_nodes": down_nodes, "costs": costs}


SCENARIOS = [
    ({}, {"fail_links": ["n0-n1"]}),
    ({}, {"fail_links": ["n0-n1", "n5-n6"]}),
    ({}, {"fail_nodes": ["n3"]}),
    ({}, {"fail_nodes": ["n3", "n10"], "fail_links": ["n7-n8"]}),
    ({"down_links": ["n2-n3"]}, {"restore_links": ["n2-n3"]}),
    ({"down_nodes": ["n4"]}, {"restore_nodes": ["n4"], "fail_links": ["n0-n1"]}),
    ({"down_nodes": ["n4"]}, {"restore_nodes": ["n4"]}),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("before", "scenario"), SCENARIOS)
def test_matches_recomputation_on_unique_costs(seed, before, scenario) -> None:
    topo = _unique_costs(generate("waxman", 24, seed=seed), seed)
    # Use links that exist in this random graph: map the nominal names onto real ones.
    keys = [link.key for link in topo.links]
    rename = {"n0-n1": keys[0], "n5-n6": keys[5], "n7-n8": keys[7], "n2-n3": keys[2]}
    before = {k: [rename.get(x, x) for x in v] for k, v in before.items()}
    scenario = {k: [rename.get(x, x) for x in v] for k, v in scenario.items()}
    _check(topo, before, scenario, _after(topo, before, scenario))


@pytest.mark.parametrize("seed", [4, 5])
def test_cost_changes_match_recomputation(seed) -> None:
    topo = _unique_costs(grid(5), seed)
    link = topo.links[seed].key
    other = topo.links[seed + 6].key
    for costs in ({link: 9.0}, {link: 0.1}, {link: 9.0, other: 0.2}):
        _check(topo, {}, {"set_costs": costs}, _after(topo, {}, {"set_costs": costs}))


def test_random_scenarios_match_recomputation() -> None:
    rng = random.Random(11)
    topo = _unique_costs(generate("ring_chords", 30, seed=3), 9)
    keys = [link.key for link in topo.links]
    for _ in range(12):
        before = {"down_links": rng.sample(keys, 2), "down_nodes": rng.sample(topo.names, 1)}
        up = [k for k in keys if k not in before["down_links"]]
        scenario = {
            "fail_links": rng.sample(up, 2),
            "restore_links": before["down_links"][:1],
            "fail_nodes": [n for n in rng.sample(topo.names, 1) if n not in before["down_nodes"]],
        }
        _check(topo, before, scenario, _after(topo, before, scenario))


def test_equal_costs_agree_on_reachability_and_costs() -> None:
    topo = ring(12)
    twin = DigitalTwin(topo)
    result = twin.what_if(fail_links=["n0-n1"])
    assert result.failed_links == ["n0-n1"]
    assert result.lost_pairs == []
    assert result.partitions == []
    # In a ring every pair whose path used n0-n1 goes the other way round; a pair
    # 6 hops apart had an equally short way round, so its path moves at no cost.
    change = {(c.src, c.dst): c for c in result.changed_pairs}
    assert change[("n0", "n1")].old_cost == 1 and change[("n0", "n1")].new_cost == 11
    assert all(c.delta > 0 or c.old_cost == 6 for c in result.changed_pairs)
    cut = twin.what_if(fail_links=["n0-n1", "n5-n6"])
    assert cut.partitions_created == 1
    assert sorted(cut.partitions[0]) == ["n1", "n2", "n3", "n4", "n5"]
    assert ("n0", "n3") in set(cut.lost_pairs) and not cut.reachable("n0", "n3")
    assert cut.reachable_pairs_after == 7 * 6 // 2 + 5 * 4 // 2


def test_traffic_matrix_gives_mbps_shift_and_overload() -> None:
    nodes = [Node(n) for n in "abcd"]
    links = [
        Link("a", "b", capacity_mbps=100),
        Link("b", "c", capacity_mbps=100),
        Link("a", "d", cost=2, capacity_mbps=50),
        Link("c", "d", cost=2, capacity_mbps=50),
    ]
    twin = DigitalTwin(Topology(nodes, links))
    result = twin.what_if(fail_links=["a-b"], traffic={("a", "c"): 80.0})
    assert result.load_unit == "mbps"
    assert result.load_shift == {"a-b": -80.0, "b-c": -80.0, "a-d": 80.0, "c-d": 80.0}
    assert result.overloaded_links == ["a-d", "c-d"]
    assert sorted(result.links_affected) == ["a-b", "a-d", "b-c", "c-d"]


def test_impaired_routes_drop_when_a_bad_link_is_avoided() -> None:
    topo = ring(6)
    twin = DigitalTwin(topo)
    plain = twin.what_if(impaired_links=["n0-n1"])
    # Routes over n0-n1 in a 6-ring: ordered pairs whose shortest path uses it.
    assert plain.impaired_routes_before == plain.impaired_routes_after > 0
    raised = twin.what_if(set_costs={"n0-n1": 100.0}, impaired_links=["n0-n1"])
    assert raised.impaired_routes_after == 0 < raised.impaired_routes_before
    assert raised.lost_pairs == []
    isolated = twin.what_if(fail_nodes=["n3"], impaired_nodes=["n3"])
    assert isolated.impaired_routes_after == 0


def test_mirror_state_and_reachability() -> None:
    twin = DigitalTwin(ring(5))
    assert twin.mirror(down_links=["n0-n1", ("n3", "n2")]) is True
    assert twin.mirror(down_links=["n1-n0", "n2-n3"]) is False
    state = twin.state()
    assert state.down_links == {"n0-n1", "n2-n3"}
    assert not twin.reachable("n1", "n3") and twin.reachable("n3", "n0")
    back = twin.what_if(restore_links=["n0-n1"])
    assert back.reachable("n1", "n3") and back.partitions == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fail_links": ["n0-n9"]}, "no link 'n0-n9'"),
        ({"fail_nodes": ["zz"]}, "unknown node 'zz'"),
        ({"set_costs": {"n0-n1": 0}}, "must be > 0"),
        ({"fail_links": ["n0-n1"], "restore_links": ["n0-n1"]}, "both fail and restore"),
        ({"traffic": np.ones((2, 2))}, "shape"),
    ],
)
def test_bad_scenarios_raise_topology_errors(kwargs, match) -> None:
    with pytest.raises(TopologyError, match=match) as info:
        DigitalTwin(ring(5)).what_if(**kwargs)
    assert info.value.fix


def test_refuses_topologies_above_max_nodes() -> None:
    with pytest.raises(TopologyError, match="at most 4 nodes"):
        DigitalTwin(ring(5), max_nodes=4)


@pytest.mark.parametrize(
    "scenario",
    [{"fail_links": ["n0-n1"]}, {"fail_nodes": ["n20"]}, {"set_costs": {"n10-n11": 50.0}}],
)
def test_deep_trees_match_recomputation(scenario) -> None:
    """Paths longer than the walkers' step budget are summed by prefix sums instead."""
    topo = _unique_costs(ring(120), 3)
    _check(topo, {}, scenario, _after(topo, {}, scenario))
