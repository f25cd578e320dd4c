"""How fast the mesh heals a failed link, side by side with babeld and BIRD OSPF+BFD.

On one ring-with-chords topology (16 netns nodes; quick: 8) a UDP echo stream
runs every 10 ms between two far-apart nodes.  On a link in the middle of the
current path we inject (a) carrier loss (both veth ends ``ip link set down``)
and (b) silent loss (nftables drops 100 % at both ends, the link stays up),
``repeats`` times each; the outage is the longest gap between echo replies.
The same is then done, on fresh namespaces of the same topology, with babeld
(default timers and a fast hello) and BIRD 2 OSPF with BFD 100 ms x 3.

Also measured: cold-start convergence (last MeshNode started -> every pair
answers an ICMP echo), CPU per MeshNode actor process while probing at the
default interval, and SPF + LFA time at 1,000 nodes on the simulator.
Run as root: ``python benchmarks/heal.py [--quick]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _harness import console, cpu_percent, idle_actor_cpu, parse_args, report
from _peers import PEERS, PeerMesh

from x0tta6bl4 import loggers
from x0tta6bl4.mesh.addressing import AddressPlan
from x0tta6bl4.mesh.echo import EchoStream, reachability
from x0tta6bl4.mesh.faults import parse_fault
from x0tta6bl4.mesh.netns import NetnsBackend
from x0tta6bl4.mesh.nsutil import netns_exec
from x0tta6bl4.mesh.topology import Topology, ring_chords

KINDS = {"carrier": "link-down", "silent": "loss"}
# Longest wait for one repair, and quiet time after a heal before the next fault
# (BIRD must not be inside OSPF's 5 s MinLSInterval when the next failure comes).
TIMEOUT_S = {"ours": 5.0, "babeld": 60.0, "babeld_fast": 10.0, "bird_bfd": 15.0}
SETTLE_S = {"ours": 1.0, "babeld": 4.0, "babeld_fast": 1.5, "bird_bfd": 1.0}
# BIRD's OSPF originates a router LSA at most once per 5 s (MinLSInterval, fixed in BIRD):
# after its adjacencies are Full again it gets this long before the next failure.
BIRD_QUIET_S = 6.0
STEADY_S = 0.3
ECHO_PRIORITY = 30
"""SCHED_RR of the echo stream's threads (above the MeshNodes' 10): the probe must keep
its cadence on a busy host."""


def far_pair(topology: Topology) -> tuple[str, str]:
    """The source n0 and the node farthest from it in hops."""
    src = topology.names[0]
    dist = {src: 0}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        for nxt in topology.neighbors(node):
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    return src, max(dist, key=lambda n: (dist[n], n))


def current_path(plan: AddressPlan, src: str, dst: str) -> list[str] | None:
    """The hops the echo stream's packets take from ``src`` to ``dst`` right now; None
    while a hop has no route or the hops loop (the protocol is still converging).

    Each hop is looked up as the kernel forwards the stream's own packets (``ip route
    get D from S [iif IN]``), so multipath routes (BIRD installs ECMP) resolve to the
    next hop the flow's hash really picks.
    """
    peer_of = {
        node: {end.ifname: peer for peer, end in plan.ends(node).items()}
        for node in plan.namespaces
    }
    source = plan.loopbacks[src]
    hops, node, iif = [src], src, None
    while node != dst:
        query = ["ip", "-o", "route", "get", plan.loopbacks[dst], "from", source]
        out = subprocess.run(
            netns_exec(plan.namespaces[node], query + (["iif", iif] if iif else [])),
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if "dev" not in out:
            return None
        prev, node = node, peer_of[node][out[out.index("dev") + 1]]
        if node in hops:
            return None
        iif = plan.ends(node)[prev].ifname
        hops.append(node)
    return hops


def stable_path(plan: AddressPlan, src: str, dst: str, timeout_s: float) -> list[str]:
    """The current loop-free path once it has stayed the same for STEADY_S (so a fault
    lands on the path the traffic really takes), waiting up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: list[str] | None = None
    since = time.monotonic()
    while True:
        path = current_path(plan, src, dst)
        if path is None or path != last:
            last, since = path, time.monotonic()
        elif time.monotonic() - since >= STEADY_S:
            return path
        if time.monotonic() > deadline:
            raise RuntimeError(f"no steady loop-free path {src} -> {dst} within {timeout_s:g} s")
        time.sleep(0.05)


def wait_converged(plan: AddressPlan, timeout_s: float) -> float | None:
    """Seconds until every pair answers an ICMP echo, or None."""
    started = time.monotonic()
    want = len(plan.namespaces) * (len(plan.namespaces) - 1)
    while time.monotonic() - started < timeout_s:
        if len(reachability(plan.namespaces, plan.loopbacks, timeout_s=0.2)) == want:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def steady(stream: EchoStream, since: float) -> bool:
    """Replies flow again: one after ``since`` and none missing in the last STEADY_S."""
    now = time.time()
    if now - since < STEADY_S:
        return False
    return stream.last_reply() > since and stream.gap(now - STEADY_S, now) < 3 * stream.interval_s


def measure_faults(
    label: str,
    backend: NetnsBackend,
    src: str,
    dst: str,
    repeats: int,
    ready: Callable[[], bool] | None = None,
) -> dict[str, list[float]]:
    """Outages (ms) of every kind of fault, ``repeats`` times, on the current path.

    Before each fault the benchmark waits for ``ready`` (the mesh is whole again: every
    link or adjacency back up) when given, and always for the protocol's settle time
    after the previous heal.
    """
    plan = backend._require_plan()
    outages: dict[str, list[float]] = {kind: [] for kind in KINDS}
    stream = EchoStream(
        plan.namespaces[src],
        plan.loopbacks[src],
        plan.namespaces[dst],
        plan.loopbacks[dst],
        realtime_priority=ECHO_PRIORITY,
    ).start()
    try:
        stream.wait_replies(30, timeout_s=30)
        for rep in range(repeats):
            for kind, fault_name in KINDS.items():
                if ready is not None:
                    deadline = time.monotonic() + 60
                    while not ready() and time.monotonic() < deadline:
                        time.sleep(0.1)
                path = stable_path(plan, src, dst, TIMEOUT_S[label] + 30)
                mid = (len(path) - 1) // 2
                a, b = path[mid], path[mid + 1]
                fault_at = time.time()
                backend.faults.inject(parse_fault(fault_name, [a, b], "100"))
                deadline = fault_at + TIMEOUT_S[label]
                while time.time() < deadline and not steady(stream, fault_at):
                    time.sleep(0.02)
                end = time.time()
                outage_ms = stream.gap(fault_at, end) * 1e3
                outages[kind].append(outage_ms)
                console.print(
                    f"  {label:<11} {kind:<7} #{rep + 1}: link {a}-{b} of "
                    f"{'-'.join(path)}: {outage_ms:7.1f} ms"
                )
                backend.faults.heal()
                time.sleep(SETTLE_S[label])
                stream.wait_replies(30, timeout_s=TIMEOUT_S[label] + 30)
    finally:
        stream.stop()
    return outages


def run_ours(
    topology: Topology, data_dir: Path, src: str, dst: str, repeats: int
) -> dict[str, Any]:
    from x0tta6bl4.actors.mesh_app import MeshComponent
    from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray

    settings = bench_settings(data_dir)
    info = ensure_ray(settings.ray)
    component = MeshComponent(settings, topology)
    try:
        component.start(info)
        import ray

        states = ray.get([a.status.remote() for a in component.actors.values()])
        last_start = max(s["started_unix"] for s in states)
        plan = component.backend._require_plan()
        took = wait_converged(plan, 120.0)
        if took is None:
            states = ray.get([a.status.remote() for a in component.actors.values()])
            detail = ", ".join(
                f"{s['node']}: {s['links_up']}/{s['links']} links, {s['slow_ticks']} late ticks"
                for s in states
            )
            raise RuntimeError(f"our mesh did not converge in 120 s ({detail})")
        cold_ms = (time.time() - last_start) * 1e3
        time.sleep(SETTLE_S["ours"])
        cpu = cpu_percent([s["pid"] for s in states], seconds=5.0)
        idle = idle_actor_cpu(seconds=5.0)

        def whole() -> bool:
            """Every link up and every node's backups in line with its table again."""
            states = ray.get([a.status.remote() for a in component.actors.values()])
            return all(s["links_up"] == s["links"] and s["backups_settled"] for s in states)

        outages = measure_faults("ours", component.backend, src, dst, repeats, whole)
        return {"cold_ms": cold_ms, "cpu": cpu, "idle_cpu": idle, "outages": outages}
    finally:
        component.stop()
        shutdown_ray()


def bench_settings(data_dir: Path, **mesh: Any) -> Any:
    from x0tta6bl4.config import Settings

    return Settings(
        data_dir=data_dir,
        mesh={"backend": "netns", "consumer": "", "start_timeout_s": 600, **mesh},
        ray={"dashboard": False, "namespace": "x0-bench-heal"},
    )


def signed_hello_cpu(topology: Topology, data_dir: Path) -> float:
    """CPU percent per MeshNode with every hello signed (``mesh.hello_macs=false``, as
    before link keys), on the same topology: the baseline of ``probe.cpu_percent_per_node``.
    Measured once every node had 10 s to bring its links up (converged or not)."""
    import ray

    from x0tta6bl4.actors.mesh_app import MeshComponent
    from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray

    settings = bench_settings(data_dir, hello_macs=False)
    component = MeshComponent(settings, topology)
    try:
        component.start(ensure_ray(settings.ray))
        time.sleep(10.0)
        states = ray.get([a.status.remote() for a in component.actors.values()])
        return cpu_percent([s["pid"] for s in states], seconds=5.0)
    finally:
        component.stop()
        shutdown_ray()


def run_peer(
    kind: str, topology: Topology, data_dir: Path, src: str, dst: str, repeats: int
) -> dict[str, Any]:
    backend = NetnsBackend(data_dir, run_id=f"hp{PEERS.index(kind)}{os.getpid() % 10000}")
    backend.up(topology)
    try:
        with PeerMesh(kind, backend._require_plan()) as peers:
            took = wait_converged(backend._require_plan(), 120.0)
            if took is None or not peers.alive():
                raise RuntimeError(f"{kind} did not converge in 120 s")
            time.sleep(SETTLE_S[kind])

            def whole() -> bool:
                if not peers.ready():
                    return False
                if kind == "bird_bfd":
                    time.sleep(BIRD_QUIET_S)
                return True

            outages = measure_faults(kind, backend, src, dst, repeats, whole)
        return {"cold_ms": took * 1e3, "outages": outages}
    finally:
        backend.down()


def hello_cpu_us(n: int = 2000) -> dict[str, float]:
    """CPU microseconds to seal and open one hello: signed (a handshake, as every hello
    was before link keys) and MAC'd on a keyed link, in this process."""
    from x0tta6bl4.mesh.security import Keyring, NodeKey, SecureCodec
    from x0tta6bl4.mesh.wire import Hello

    ka, kb = NodeKey.generate("a"), NodeKey.generate("b")
    ring = Keyring({"a": ka.public(), "b": kb.public()})
    a, b = SecureCodec(ka, ring), SecureCodec(kb, ring)

    def cost() -> float:
        started = time.thread_time()
        for i in range(n):
            b.open(a.seal(Hello("a", 2**50 + i, time.time(), "b", 5, 0.001, 1.0)))
        return (time.thread_time() - started) / n * 1e6

    signed = cost()
    for seq in (1, 2):  # two handshakes each way key the link
        for tx, rx, src, dst in ((a, b, "a", "b"), (b, a, "b", "a")):
            message = rx.open(tx.seal(Hello(src, seq, time.time(), dst, 0, 0.0, 1.0)))
            rx.accept_hello(message)  # type: ignore[arg-type]
    return {"signed": signed, "mac": cost()}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    args = parse_args("heal", __doc__.splitlines()[0])
    if os.geteuid() != 0:
        raise SystemExit("benchmarks/heal.py needs root (network namespaces, routes, nftables)")
    loggers.configure_logging("console", "warning")
    nodes, repeats = (8, 3) if args.quick else (16, 10)
    topology = ring_chords(nodes)
    src, dst = far_pair(topology)
    console.print(
        f"{nodes} nodes, {len(topology.links)} links, stream {src} -> {dst}, "
        f"{repeats} repeats per fault"
    )
    data_dir = Path(tempfile.mkdtemp(prefix="x0-bench-heal-"))
    # babeld's default timers (4 s hellos) take 10-60 s per fault: a few repeats show
    # them, ten made the full run last over half an hour.
    peer_repeats = {"babeld": 1 if args.quick else 3}
    started = time.monotonic()

    signed_cpu = signed_hello_cpu(topology, data_dir)
    ours = run_ours(topology, data_dir, src, dst, repeats)
    peers = {
        kind: run_peer(kind, topology, data_dir, src, dst, peer_repeats.get(kind, repeats))
        for kind in PEERS
    }

    from x0tta6bl4.mesh.sim import measure_spf

    hello = hello_cpu_us()
    metrics: dict[str, float] = {
        "heal.silent.p50_ms": pct(ours["outages"]["silent"], 50),
        "heal.silent.p95_ms": pct(ours["outages"]["silent"], 95),
        "heal.silent.p99_ms": pct(ours["outages"]["silent"], 99),
        "heal.carrier.p50_ms": pct(ours["outages"]["carrier"], 50),
        "heal.carrier.p95_ms": pct(ours["outages"]["carrier"], 95),
        "heal.carrier.p99_ms": pct(ours["outages"]["carrier"], 99),
        "peer.babeld.silent.p50_ms": pct(peers["babeld"]["outages"]["silent"], 50),
        "peer.babeld.silent.p95_ms": pct(peers["babeld"]["outages"]["silent"], 95),
        "peer.babeld_fast.silent.p50_ms": pct(peers["babeld_fast"]["outages"]["silent"], 50),
        "peer.babeld_fast.silent.p95_ms": pct(peers["babeld_fast"]["outages"]["silent"], 95),
        "peer.bird_bfd.silent.p50_ms": pct(peers["bird_bfd"]["outages"]["silent"], 50),
        "peer.bird_bfd.silent.p95_ms": pct(peers["bird_bfd"]["outages"]["silent"], 95),
        "peer.babeld.carrier.p50_ms": pct(peers["babeld"]["outages"]["carrier"], 50),
        "peer.babeld.carrier.p95_ms": pct(peers["babeld"]["outages"]["carrier"], 95),
        "peer.bird_bfd.carrier.p50_ms": pct(peers["bird_bfd"]["outages"]["carrier"], 50),
        "peer.bird_bfd.carrier.p95_ms": pct(peers["bird_bfd"]["outages"]["carrier"], 95),
        "converge.cold_ms": ours["cold_ms"],
        "probe.cpu_percent_per_node": ours["cpu"],
        "probe.cpu_percent_idle_actor": ours["idle_cpu"],
        "probe.cpu_percent_per_node_signed_hellos": signed_cpu,
        "ratio.probe_cpu.signed_over_mac": signed_cpu / ours["cpu"],
        "sim.spf_1000_ms": measure_spf(1000),
        "probe.hello_signed_cpu_us": hello["signed"],
        "probe.hello_mac_cpu_us": hello["mac"],
        "ratio.hello.signed_over_mac": hello["signed"] / hello["mac"],
        "nodes": nodes,
        "repeats": repeats,
        "peer.babeld_fast.carrier.p50_ms": pct(peers["babeld_fast"]["outages"]["carrier"], 50),
        "peer.babeld_fast.carrier.p95_ms": pct(peers["babeld_fast"]["outages"]["carrier"], 95),
        "peer.babeld.cold_ms": peers["babeld"]["cold_ms"],
        "peer.babeld_fast.cold_ms": peers["babeld_fast"]["cold_ms"],
        "peer.bird_bfd.cold_ms": peers["bird_bfd"]["cold_ms"],
        "ratio.silent.babeld_over_ours": (
            pct(peers["babeld"]["outages"]["silent"], 50) / pct(ours["outages"]["silent"], 50)
        ),
        "ratio.silent.bird_bfd_over_ours": (
            pct(peers["bird_bfd"]["outages"]["silent"], 50) / pct(ours["outages"]["silent"], 50)
        ),
        "ratio.carrier.bird_bfd_over_ours": (
            pct(peers["bird_bfd"]["outages"]["carrier"], 50) / pct(ours["outages"]["carrier"], 50)
        ),
        "seconds": time.monotonic() - started,
    }
    notes = {
        "outage": "longest gap between replies of a 10 ms UDP echo stream around the fault",
        "silent": "nftables drop 100% on ingress at both ends of the link (link stays up)",
        "carrier": "ip link set down at both ends of the link",
        "babeld_repeats": str(peer_repeats.get("babeld", repeats)),
        "babeld_fast_hello_s": "0.05",
        "cpu": "whole MeshNode actor process (includes Ray's worker threads), mean per node",
        "samples": str({k: [round(x, 1) for x in v] for k, v in ours["outages"].items()}),
    }
    report("heal", args, metrics, notes=notes)


if __name__ == "__main__":
    main()
