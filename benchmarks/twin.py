"""What-if latency of the digital twin at 1,000 nodes, and its agreement with a real mesh.

Latency: random single-link and single-node failures on 1,000-node Waxman and
ring-with-chords meshes, timed inside ``DigitalTwin.what_if`` (the trees of
the mirrored state are built once beforehand, as the Supervisor does when the
live state changes).  Peer in the same run: recomputing every shortest-path
tree of the failed mesh from scratch (scipy, all sources), which is what a
non-incremental twin does per question.

Agreement: for link, node and partitioning failures the twin's predicted
reachability of every pair is compared with the mesh: the in-process
simulator (routes followed hop by hop), and, as root, a netns mesh of
MeshNode actors (real ICMP echoes through kernel routes).
"""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local Ray for the netns check
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import parse_args, report
from x0tta6bl4.config import MeshSettings, RaySettings, Settings
from x0tta6bl4.mesh.sim import SimBackend
from x0tta6bl4.mesh.topology import Topology, generate
from x0tta6bl4.twin import DigitalTwin
from x0tta6bl4.twin._graph import IndexedGraph, build_trees
from x0tta6bl4.twin.validate import faults_of, mismatches, observe, settle


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_whatifs(kind: str, n: int, trials: int, seed: int = 1) -> dict[str, float]:
    topo = generate(kind, n, seed=seed)
    twin = DigitalTwin(topo)
    started = time.perf_counter()
    twin.prepare()
    prepare_ms = (time.perf_counter() - started) * 1e3
    rng = np.random.default_rng(seed)
    links = [topo.links[i].key for i in rng.choice(len(topo.links), trials, replace=False)]
    nodes = [topo.names[i] for i in rng.choice(len(topo), max(3, trials // 3), replace=False)]
    link_ms, link_cpu_ms, node_ms, pairs = [], [], [], []
    for key in links:
        cpu = time.process_time()
        result = twin.what_if(fail_links=[key])
        link_cpu_ms.append((time.process_time() - cpu) * 1e3)
        link_ms.append(result.elapsed_ms)
        pairs.append(result.pairs_recomputed)
    for name in nodes:
        node_ms.append(twin.what_if(fail_nodes=[name]).elapsed_ms)
    # Peer: every tree of the failed mesh from scratch, for a few of the same failures.
    graph = IndexedGraph(topo)
    full_ms = []
    for key in links[: max(3, trials // 5)]:
        alive = np.ones(graph.num_links, dtype=bool)
        alive[graph.link(key)] = False
        started = time.perf_counter()
        build_trees(graph.adjacency(alive, graph.cost))
        full_ms.append((time.perf_counter() - started) * 1e3)
    return {
        "link_p50_ms": statistics.median(link_ms),
        "link_p95_ms": _percentile(link_ms, 95),
        "link_max_ms": max(link_ms),
        "link_cpu_p50_ms": statistics.median(link_cpu_ms),
        "node_p50_ms": statistics.median(node_ms),
        "node_max_ms": max(node_ms),
        "pairs_recomputed_p50": statistics.median(pairs),
        "prepare_ms": prepare_ms,
        "full_recompute_ms": statistics.median(full_ms),
    }


def scenarios(topo: Topology) -> list[tuple[list[str], list[str]]]:
    """A link failure, a node failure, and a pair of link failures that partitions."""
    twin = DigitalTwin(topo)
    cut = next(
        [a.key, b.key]
        for a, b in itertools.combinations(topo.links, 2)
        if twin.what_if(fail_links=[a.key, b.key]).partitions_created
    )
    return [([topo.links[0].key], []), ([], [topo.names[len(topo) // 2]]), (cut, [])]


def _ends(topo: Topology, key: str) -> tuple[str, str]:
    return next(link.ends for link in topo.links if link.key == key)


def check_sim(n: int) -> tuple[int, int]:
    """(mismatches, pairs compared) against the simulator."""
    topo = generate("ring_chords", n, seed=2)
    bad = checked = 0
    for fail_links, fail_nodes in scenarios(topo):
        sim = SimBackend(MeshSettings(backend="sim", byzantine=False), seed=2)
        sim.up(topo)
        if sim.run_until(sim.converged, 60, 0.1) is None:
            raise RuntimeError(f"the {n}-node simulated mesh did not converge")
        predicted = DigitalTwin(topo).what_if(fail_links=fail_links, fail_nodes=fail_nodes)
        for fault in faults_of([_ends(topo, k) for k in fail_links], fail_nodes):
            sim.inject(fault)
        seen = settle(
            lambda sim=sim: observe(sim.reachable, topo.names),
            min_wait_s=2.0,
            timeout_s=20,
            step=sim.run,
        )
        bad += len(mismatches(predicted, seen))
        checked += len(seen)
    return bad, checked


def check_netns(nodes: int) -> tuple[int, int]:
    """(mismatches, pairs compared) against a netns mesh of MeshNode actors (root only)."""
    from x0tta6bl4.actors.mesh_app import MeshComponent
    from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray

    data_dir = Path(tempfile.mkdtemp(prefix="x0-bench-twin-"))
    settings = Settings(
        data_dir=data_dir, mesh={"backend": "netns", "nodes": nodes, "consumer": ""}
    )
    info = ensure_ray(RaySettings(dashboard=False, namespace="x0-bench-twin"))
    component = MeshComponent(settings)
    component.start(info)
    topo, backend = component.topology, component.backend
    bad = checked = 0
    try:

        def pings() -> dict[tuple[str, str], bool]:
            return observe(lambda a, b: backend.reachable(a, b, timeout_s=0.3), topo.names)

        settle(pings, min_wait_s=3.0, timeout_s=60)
        for fail_links, fail_nodes in scenarios(topo):
            predicted = DigitalTwin(topo).what_if(fail_links=fail_links, fail_nodes=fail_nodes)
            ids = [
                component.fault(f)
                for f in faults_of([_ends(topo, k) for k in fail_links], fail_nodes)
            ]
            seen = settle(pings, min_wait_s=3.0, timeout_s=30)
            bad += len(mismatches(predicted, seen))
            checked += len(seen)
            for fault_id in ids:
                component.heal(fault_id)
            settle(pings, min_wait_s=3.0, timeout_s=60)
    finally:
        component.stop()
        shutdown_ray()
    return bad, checked


def main() -> None:
    args = parse_args("twin", "digital twin what-if latency at 1,000 nodes and agreement")
    trials = 12 if args.quick else 60
    waxman = time_whatifs("waxman", 1000, trials)
    chords = time_whatifs("ring_chords", 1000, trials)
    sim_bad, sim_pairs = check_sim(60 if args.quick else 200)
    notes = {
        "latency": "DigitalTwin.what_if on 1,000 nodes, p50 wall time over random single-link "
        "failures (Waxman mean degree ~4); *_cpu_ms is the process CPU time of the same calls "
        "(wall time grows when other processes share the cores); trees of the mirrored "
        "state prepared once",
        "peer": "full_recompute_ms: every shortest-path tree of the failed mesh from scratch",
    }
    metrics: dict[str, float] = {
        "whatif_1000_nodes_ms": waxman["link_p50_ms"],
        "whatif_1000_nodes_p95_ms": waxman["link_p95_ms"],
        "whatif_1000_nodes_max_ms": waxman["link_max_ms"],
        "whatif_1000_nodes_cpu_ms": waxman["link_cpu_p50_ms"],
        "whatif_1000_nodes_node_fail_ms": waxman["node_p50_ms"],
        "whatif_1000_ring_chords_ms": chords["link_p50_ms"],
        "whatif_1000_ring_chords_p95_ms": chords["link_p95_ms"],
        "whatif_1000_ring_chords_cpu_ms": chords["link_cpu_p50_ms"],
        "whatif_1000_ring_chords_node_fail_ms": chords["node_p50_ms"],
        "pairs_recomputed_p50": waxman["pairs_recomputed_p50"],
        "prepare_1000_nodes_ms": waxman["prepare_ms"],
        "baseline.full_recompute_ms": waxman["full_recompute_ms"],
        "speedup_vs_full_recompute": waxman["full_recompute_ms"] / waxman["link_p50_ms"],
        "sim.pairs_checked": sim_pairs,
        "sim.mismatches": sim_bad,
    }
    mismatch_total = sim_bad
    if os.geteuid() == 0:
        netns_bad, netns_pairs = check_netns(6)
        metrics["netns.pairs_checked"] = netns_pairs
        metrics["netns.mismatches"] = netns_bad
        mismatch_total += netns_bad
        notes["reachability"] = (
            "vs the netns mesh (6 MeshNode actors, real pings through kernel routes) "
            "and vs SimBackend; link, node and partition failures"
        )
    else:
        notes["reachability"] = "vs SimBackend only (not root: no netns mesh)"
    metrics["reachability_mismatches"] = mismatch_total
    report("twin", args, metrics, notes)


if __name__ == "__main__":
    main()
