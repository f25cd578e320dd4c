"""Link-state database (seq, aging, two-way) and SPF with loop-free alternates."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from x0tta6bl4.mesh.linkstate import Lsdb, Verdict, link_cost
from x0tta6bl4.mesh.spf import Graph, routing_table, shortest_paths
from x0tta6bl4.mesh.topology import waxman
from x0tta6bl4.mesh.wire import Lsa


def lsdb_of(adjacency: dict[str, dict[str, float]], owner: str = "a") -> Lsdb:
    lsdb = Lsdb(owner, max_age_s=40.0)
    for origin, links in adjacency.items():
        lsdb.install(Lsa(origin, 1, 0.0, tuple(sorted(links.items()))), b"", 0.0)
    return lsdb


def symmetric(edges: list[tuple[str, str, float]]) -> dict[str, dict[str, float]]:
    adj: dict[str, dict[str, float]] = {}
    for a, b, cost in edges:
        adj.setdefault(a, {})[b] = cost
        adj.setdefault(b, {})[a] = cost
    return adj


# --- LSDB ---------------------------------------------------------------------------


def test_lsa_sequence_numbers_decide() -> None:
    lsdb = Lsdb("a", max_age_s=40.0)
    first = Lsa("b", 10, 0.0, (("a", 1.0),))
    assert lsdb.verdict(first) == Verdict.NEWER
    assert lsdb.install(first, b"raw10", 0.0)
    assert lsdb.verdict(first) == Verdict.DUPLICATE
    assert lsdb.verdict(Lsa("b", 9, 0.0, ())) == Verdict.STALE
    assert not lsdb.install(Lsa("b", 9, 0.0, ()), b"raw9", 0.0)
    # A refresh with the same links is stored but is no change for SPF.
    assert not lsdb.install(Lsa("b", 11, 0.0, (("a", 1.0),)), b"raw11", 1.0)
    entry = lsdb.get("b")
    assert entry is not None and entry.raw == b"raw11" and lsdb.seq("b") == 11
    assert lsdb.install(Lsa("b", 12, 0.0, (("a", 2.0),)), b"raw12", 2.0)


def test_aging_purges_unrefreshed_lsas_but_never_our_own() -> None:
    lsdb = Lsdb("a", max_age_s=40.0)
    lsdb.install(Lsa("a", 1, 0.0, ()), b"", 0.0)
    lsdb.install(Lsa("b", 1, 0.0, ()), b"", 0.0)
    lsdb.install(Lsa("c", 1, 0.0, ()), b"", 30.0)
    assert lsdb.age(40.0) == []
    assert lsdb.age(40.1) == ["b"]
    assert "b" not in lsdb and "a" in lsdb and "c" in lsdb
    assert lsdb.age(1000.0) == ["c"]
    assert len(lsdb) == 1


def test_links_count_only_when_both_ends_advertise_them() -> None:
    # m claims zero-cost links to a and c; only a (a real neighbour) confirms m.
    lsdb = lsdb_of(
        {
            "a": {"b": 1.0, "m": 3.0},
            "b": {"a": 1.0, "c": 1.0},
            "c": {"b": 1.0},
            "m": {"a": 0.0, "c": 0.0, "ghost": 0.0},
        }
    )
    graph, unconfirmed = lsdb.graph()
    assert unconfirmed == {"m": ["c", "ghost"]}
    edges = {
        (graph.names[u], graph.names[v], c)
        for u, row in enumerate(graph.adj)
        for v, c in row.items()
    }
    assert ("m", "c", 0.0) not in edges
    # The confirmed a-m link costs what the honest end says, not m's zero.
    assert ("a", "m", 3.0) in edges
    assert routing_table(graph, "a")["c"].next_hop == "b"


def test_confirmed_cost_is_the_larger_claim_floored_at_one() -> None:
    assert link_cost(1.5, 4.0) == 4.0
    assert link_cost(0.0, 0.2) == 1.0


# --- SPF and LFA --------------------------------------------------------------------


def ring5() -> Graph:
    names = "abcde"
    return Graph.from_edges([(names[i], names[(i + 1) % 5], 1.0) for i in range(5)])


def test_ring_alternates_exist_only_where_the_inequality_holds() -> None:
    table = routing_table(ring5(), "a")
    assert {d: (e.next_hop, e.cost) for d, e in table.items()} == {
        "b": ("b", 1.0),
        "c": ("b", 2.0),
        "d": ("e", 2.0),
        "e": ("e", 1.0),
    }
    # dist(e, c) = 2 < dist(e, a) + dist(a, c) = 3: e is a loop-free alternate for c.
    assert (table["c"].alternate, table["c"].alternate_cost) == ("e", 3.0)
    assert (table["d"].alternate, table["d"].alternate_cost) == ("b", 3.0)
    # dist(e, b) = 2 = dist(e, a) + dist(a, b): e would send b's traffic back to a.
    assert table["b"].alternate is None
    assert table["e"].alternate is None


def test_square_with_diagonal_prefers_node_protecting_alternates() -> None:
    #   s --1-- e --1-- d
    #   |  \            |
    #   1   1 (diag)    1
    #   |      \        |
    #   n --1-- m --1-- +   (m-d)
    graph = Graph.from_edges(
        [
            ("s", "e", 1.0),
            ("e", "d", 1.0),
            ("s", "n", 1.0),
            ("n", "m", 1.0),
            ("s", "m", 1.0),
            ("m", "d", 1.0),
        ]
    )
    table = routing_table(graph, "s")
    entry = table["d"]
    # Two equal paths (via e and via m): the primary is one, the other is the alternate.
    assert {entry.next_hop, entry.alternate} == {"e", "m"}
    assert entry.node_protecting
    assert entry.alternate_cost == 2.0
    # n: primary n, alternate m (dist(m, n) = 1 < dist(m, s) + dist(s, n) = 2).
    assert (table["n"].next_hop, table["n"].alternate) == ("n", "m")
    assert not table["n"].node_protecting  # n is the destination itself


def test_no_transit_nodes_are_reached_but_not_crossed() -> None:
    graph = Graph.from_edges(
        [("a", "x", 1.0), ("x", "c", 1.0), ("a", "b", 2.0), ("b", "c", 2.0)], no_transit=["x"]
    )
    table = routing_table(graph, "a")
    assert table["x"].next_hop == "x"
    assert (table["c"].next_hop, table["c"].cost) == ("b", 4.0)


def test_unknown_source_or_unreachable_destination() -> None:
    graph = Graph.from_edges([("a", "b", 1.0)], nodes=["a", "b", "lonely"])
    assert routing_table(graph, "zz") == {}
    assert "lonely" not in routing_table(graph, "a")


def floyd(graph: Graph) -> list[list[float]]:
    n = len(graph)
    d = [[0.0 if i == j else math.inf for j in range(n)] for i in range(n)]
    for u, row in enumerate(graph.adj):
        for v, c in row.items():
            d[u][v] = min(d[u][v], c)
    for k, i, j in itertools.product(range(n), repeat=3):
        d[i][j] = min(d[i][j], d[i][k] + d[k][j])
    return d


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spf_distances_match_floyd_warshall(seed: int) -> None:
    topo = waxman(25, seed=seed)
    graph = Graph.from_edges([(k.a, k.b, 1.0 + sum(map(ord, k.key)) % 5) for k in topo.links])
    full = floyd(graph)
    for src in range(len(graph)):
        assert shortest_paths(graph, src)[0] == pytest.approx(full[src])


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_alternates_never_loop_back_through_the_source(seed: int) -> None:
    """Property: from every alternate, the *old* next hops (nobody else knows about the
    failure yet) reach the destination without passing the source; node-protecting
    alternates also avoid the failed primary next hop."""
    topo = waxman(30, seed=seed)
    graph = Graph.from_edges([(k.a, k.b, 1.0 + sum(map(ord, k.key)) % 4) for k in topo.links])
    tables = {name: routing_table(graph, name) for name in graph.names}
    checked = 0
    for source, table in tables.items():
        for dest, entry in table.items():
            if entry.alternate is None:
                continue
            hop, path = entry.alternate, []
            while hop != dest:
                path.append(hop)
                hop = tables[hop][dest].next_hop
            assert source not in path
            if entry.node_protecting:
                assert entry.next_hop not in path
            checked += 1
    assert checked > 50


def naive(lsdb: Lsdb) -> tuple[set[tuple[str, str, float]], dict[str, list[str]]]:
    """The two-way graph recomputed from scratch from the stored LSAs."""
    links = {entry.lsa.origin: entry.links for entry in lsdb}
    edges, unconfirmed = set(), {}
    for origin, claims in links.items():
        for neighbor, cost in claims.items():
            back = links.get(neighbor, {}).get(origin)
            if back is None:
                unconfirmed.setdefault(origin, []).append(neighbor)
            else:
                edges.add((origin, neighbor, link_cost(cost, back)))
    return edges, {o: sorted(n) for o, n in unconfirmed.items()}


def test_incremental_graph_matches_a_rebuild_through_random_changes() -> None:
    rng = random.Random(7)
    names = [f"n{i}" for i in range(12)]
    lsdb = Lsdb("n0", max_age_s=5.0)
    seqs = dict.fromkeys(names, 0)
    for step in range(400):
        origin = rng.choice(names)
        seqs[origin] += 1
        claims = tuple((n, float(rng.randint(1, 3))) for n in rng.sample(names, rng.randint(0, 4)))
        lsdb.install(Lsa(origin, seqs[origin], 0.0, claims), b"", now=step * 0.1)
        if step % 37 == 0:
            lsdb.age(step * 0.1)
        graph, unconfirmed = lsdb.graph()
        edges = {
            (graph.names[u], graph.names[v], c)
            for u, row in enumerate(graph.adj)
            for v, c in row.items()
        }
        assert (edges, unconfirmed) == naive(lsdb), step
