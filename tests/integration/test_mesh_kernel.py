"""The netns backend, kernel routes and faults on real namespaces (root, no Ray)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import async_wait_for, wait_for
from x0tta6bl4.errors import ConfigError, KernelFeatureError, MeshError, RouteError
from x0tta6bl4.mesh.faults import FAULT_TABLE, parse_fault
from x0tta6bl4.mesh.inspect import run_routes
from x0tta6bl4.mesh.kernel_routes import ROUTE_PROTO, KernelRoutes, KernelRouteSink, NextHop
from x0tta6bl4.mesh.netns import NetnsBackend, clean
from x0tta6bl4.mesh.nsutil import list_netns, pids_in_netns
from x0tta6bl4.mesh.ports import Route
from x0tta6bl4.mesh.topology import ring
from x0tta6bl4.mesh.transport import LinkSocket, UdpTransport

pytestmark = pytest.mark.root


def sh(ns: str, cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", cmd], capture_output=True, text=True, check=False
    ).stdout


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[NetnsBackend]:
    backend = NetnsBackend(tmp_path, run_id=f"k{os.getpid() % 100000}")
    backend.up(ring(4))
    yield backend
    backend.down()


def sink_for(mesh: NetnsBackend, node: str, **kwargs: object) -> KernelRouteSink:
    p = mesh._require_plan()
    hops = {peer: NextHop(end.ifname, end.peer_address) for peer, end in p.ends(node).items()}
    return KernelRouteSink(mesh.worker(node), hops, p.loopbacks, p.loopbacks[node], **kwargs)  # type: ignore[arg-type]


def test_up_builds_namespaces_links_and_loopbacks(mesh: NetnsBackend) -> None:
    p = mesh._require_plan()
    assert sorted(list_netns(f"x0-{mesh.run_id}-")) == sorted(p.namespaces.values())
    ns0 = p.namespaces["n0"]
    addrs = sh(ns0, "ip -br addr")
    assert f"{p.loopbacks['n0']}/32" in addrs
    for end in p.ends("n0").values():
        assert f"{end.address}/31" in addrs and end.ifname in addrs
    assert sh(ns0, "sysctl -n net.ipv4.ip_forward").strip() == "1"
    assert sh(ns0, "sysctl -n net.ipv4.conf.all.rp_filter").strip() == "0"
    # Neighbours answer over the link; far nodes need routes, which nobody installed yet.
    assert mesh.reachable("n0", p.ends("n0")["n1"].peer_address)
    assert not mesh.reachable("n0", "n2")


def test_routes_install_replace_remove_and_read_back(mesh: NetnsBackend) -> None:
    p = mesh._require_plan()
    ns0 = p.namespaces["n0"]
    sink = sink_for(mesh, "n0")
    assert sink.load() == {}
    sink.apply([Route("n2", "n1", 2.0), Route("n1", "n1", 1.0)], [])
    assert sink.resync().result(10) == 0  # the queued writes landed as wanted
    shown = sh(ns0, f"ip route show proto {ROUTE_PROTO}")
    assert f"{p.loopbacks['n2']} via {p.ends('n0')['n1'].peer_address}" in shown
    assert f"src {p.loopbacks['n0']}" in shown
    # The data plane follows: n0 reaches n2 once n1 and n2 route back too.
    sink_for(mesh, "n1").apply([Route("n2", "n2", 1.0), Route("n0", "n0", 1.0)], [])
    back = sink_for(mesh, "n2")
    back.apply([Route("n0", "n1", 2.0), Route("n1", "n1", 1.0)], [])
    back.resync().result(10)
    assert mesh.reachable("n0", "n2")
    # Replace goes the other way round the ring; a new sink adopts what the kernel holds.
    sink.apply([Route("n2", "n3", 2.0)], ["n1"])
    sink.resync().result(10)
    again = sink_for(mesh, "n0")
    assert {d: r.next_hop for d, r in again.load().items()} == {"n2": "n3"}
    # A foreign route (proto static) survives our flush.
    sh(ns0, "ip route add 192.0.2.0/24 dev lo proto static")
    assert again.flush() == 1
    assert sh(ns0, f"ip route show proto {ROUTE_PROTO}").strip() == ""
    assert "192.0.2.0/24" in sh(ns0, "ip route show proto static")


def test_the_kernel_falls_over_to_the_backup_route_on_carrier_loss_without_a_write(
    mesh: NetnsBackend,
) -> None:
    p = mesh._require_plan()
    ns0, dst = p.namespaces["n0"], p.loopbacks["n2"]
    via_n1, via_n3 = p.ends("n0")["n1"], p.ends("n0")["n3"]
    # What mesh.fib_backups needs for a link whose far end went down (see docs/mesh.md).
    sh(ns0, "sysctl -qw net.ipv4.conf.all.ignore_routes_with_linkdown=1")
    sink = sink_for(mesh, "n0")
    sink.apply([Route("n2", "n1", 2.0, backup="n3")], [])
    for node, routes in {
        "n1": [Route("n2", "n2", 1.0)],
        "n3": [Route("n2", "n2", 1.0), Route("n0", "n0", 1.0)],
        "n2": [Route("n0", "n3", 2.0)],
    }.items():
        other = sink_for(mesh, node)
        other.apply(routes, [])
        assert other.resync().result(10) == 0
    assert sink.resync().result(10) == 0
    shown = sh(ns0, f"ip route show {dst} proto {ROUTE_PROTO}")
    assert f"via {via_n1.peer_address} dev {via_n1.ifname}" in shown and "metric 10" in shown
    assert f"via {via_n3.peer_address} dev {via_n3.ifname}" in shown and "metric 20" in shown
    assert f"dev {via_n1.ifname}" in sh(ns0, f"ip route get {dst}")
    listed = run_routes(mesh.data_dir, mesh.run_id, "n0")  # `x0tta6bl4 mesh routes n0`
    assert listed == [
        ("n0", "n2", dst, "n1", via_n1.ifname, "primary"),
        ("n0", "n2", dst, "n3", via_n3.ifname, "backup"),
    ]
    # The far end goes down: n0's end loses carrier (the kernel's link watch tells its
    # routing at once), and nobody writes a route.
    sh(p.namespaces["n1"], f"ip link set {p.ends('n1')['n0'].ifname} down")
    assert f"dev {via_n3.ifname}" in sh(ns0, f"ip route get {dst}")
    assert mesh.reachable("n0", "n2")
    # Our end goes down too: the kernel drops the primary, the backup forwards on, and a
    # restarted node adopts it as its primary.
    sh(ns0, f"ip link set {via_n1.ifname} down")
    assert mesh.reachable("n0", "n2")
    restarted = sink_for(mesh, "n0")
    assert restarted.load() == {"n2": Route("n2", "n3", 0.0)}
    assert restarted.suspected
    assert restarted.resync().result(10) == 2  # moved to the primary's metric
    shown = sh(ns0, f"ip route show {dst} proto {ROUTE_PROTO}")
    assert shown.count("via") == 1 and "metric 10" in shown and via_n3.ifname in shown


def test_guarded_sink_refuses_to_replace_a_route_of_another_protocol(mesh: NetnsBackend) -> None:
    p = mesh._require_plan()
    ns0 = p.namespaces["n0"]
    gw = p.ends("n0")["n1"].peer_address
    sh(ns0, f"ip route add {p.loopbacks['n2']}/32 via {gw} proto static")
    guarded = KernelRoutes(guard_foreign=True)
    hop = NextHop(p.ends("n0")["n3"].ifname, p.ends("n0")["n3"].peer_address)
    with pytest.raises(RouteError, match="belongs to protocol"):
        mesh.worker("n0").call(lambda ipr: guarded.replace(ipr, p.loopbacks["n2"], hop))
    assert f"via {gw}" in sh(ns0, f"ip route show {p.loopbacks['n2']}")


def test_loss_and_link_down_faults_apply_and_heal_at_both_ends(mesh: NetnsBackend) -> None:
    p = mesh._require_plan()
    peer_addr = p.ends("n0")["n1"].peer_address
    assert mesh.reachable("n0", peer_addr)
    loss = mesh.faults.inject(parse_fault("loss", ["n0", "n1"], "100%"))
    assert not mesh.reachable("n0", peer_addr)
    assert "up" in sh(p.namespaces["n0"], f"ip -br link show {p.ends('n0')['n1'].ifname}").lower()
    for node in ("n0", "n1"):
        assert FAULT_TABLE in sh(p.namespaces[node], "nft list tables")
    down = mesh.faults.inject(parse_fault("link-down", ["n2", "n3"]))
    assert "DOWN" in sh(p.namespaces["n3"], f"ip -br link show {p.ends('n3')['n2'].ifname}")
    assert [a.id for a in mesh.faults.active()] == [loss, down]
    assert mesh.faults.heal(loss) == [loss]
    assert mesh.reachable("n0", peer_addr)
    for node in ("n0", "n1"):
        assert FAULT_TABLE not in sh(p.namespaces[node], "nft list tables")
    mesh.faults.heal()
    assert mesh.faults.active() == []
    assert mesh.reachable("n3", p.ends("n3")["n2"].peer_address)
    ops = [(r["op"], r["id"]) for r in mesh.faults.history()]
    assert ops == [("inject", loss), ("inject", down), ("heal", loss), ("heal", down)]


def test_partition_and_node_crash_cut_exactly_their_links(mesh: NetnsBackend) -> None:
    p = mesh._require_plan()
    fid = mesh.faults.inject(parse_fault("partition", ["n0,n1"]))
    assert not mesh.reachable("n1", p.ends("n1")["n2"].peer_address)
    assert mesh.reachable("n0", p.ends("n0")["n1"].peer_address)
    mesh.faults.heal(fid)
    crash = mesh.faults.inject(parse_fault("node-crash", ["n2"]))
    for peer, end in p.ends("n2").items():
        assert "DOWN" in sh(p.namespaces[peer], f"ip -br link show {p.ends(peer)['n2'].ifname}")
        assert end.ifname
    mesh.faults.heal(crash)
    assert mesh.reachable("n2", p.ends("n2")["n1"].peer_address)


def test_delay_needs_netem_and_changes_nothing_without_it(mesh: NetnsBackend) -> None:
    p = mesh._require_plan()
    try:
        fid = mesh.faults.inject(parse_fault("delay", ["n0", "n1"], "50ms"))
    except KernelFeatureError as exc:
        assert "netem" in str(exc) and exc.fix
        assert mesh.faults.active() == []
        assert "netem" not in sh(p.namespaces["n0"], "tc qdisc show")
        return
    assert "netem" in sh(p.namespaces["n0"], "tc qdisc show")
    mesh.faults.heal(fid)
    assert "netem" not in sh(p.namespaces["n0"], "tc qdisc show")


def test_unknown_nodes_and_links_are_clear_errors(mesh: NetnsBackend) -> None:
    with pytest.raises(MeshError, match="no link between n0 and n2"):
        mesh.faults.inject(parse_fault("link-down", ["n0", "n2"]))
    with pytest.raises(MeshError, match="not in mesh run"):
        mesh.faults.inject(parse_fault("node-crash", ["n9"]))
    with pytest.raises(MeshError, match="no active fault f7"):
        mesh.faults.heal("f7")


def test_clean_after_a_crash_removes_namespaces_and_their_processes(tmp_path: Path) -> None:
    run = f"c{os.getpid() % 100000}"
    backend = NetnsBackend(tmp_path, run_id=run)
    backend.up(ring(3))
    ns = backend.namespace("n1")
    daemon = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
    wait_for(lambda: daemon.pid in pids_in_netns([ns]), 5, message="sleep inside the namespace")
    backend.close()  # the owner "crashes": nothing torn down
    del backend
    assert len(list_netns(f"x0-{run}-")) == 3
    report = clean(tmp_path, run)
    assert sorted(report.namespaces) == [f"x0-{run}-n{i}" for i in range(3)]
    assert daemon.pid in report.pids
    daemon.wait(timeout=5)  # killed (clean reaps it, so its exit status is gone)
    assert not Path(f"/proc/{daemon.pid}").exists()
    assert list_netns(f"x0-{run}-") == []
    assert not (tmp_path / "mesh" / "runs" / f"{run}.json").exists()


def test_up_refuses_leftovers_of_the_same_run_id(tmp_path: Path) -> None:
    run = f"d{os.getpid() % 100000}"
    first = NetnsBackend(tmp_path, run_id=run)
    first.up(ring(3))
    try:
        with pytest.raises(MeshError, match="already exists") as info:
            NetnsBackend(tmp_path / "other", run_id=run).up(ring(3))
        assert f"mesh clean --run {run}" in info.value.fix
        assert len(list_netns(f"x0-{run}-")) == 3  # the refused attempt touched nothing
    finally:
        first.down()


async def test_hellos_wait_for_poll_with_their_arrival_time_lsas_come_at_once(
    mesh: NetnsBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = mesh._require_plan()
    got: dict[str, list[tuple[str, bytes, float | None]]] = {"n0": [], "n1": []}
    transports = {}
    for node in ("n0", "n1"):
        end = p.ends(node)["n1" if node == "n0" else "n0"]
        link = {end.peer: LinkSocket(end.ifname, end.address, end.peer_address)}
        transports[node] = UdpTransport(
            p.namespaces[node], link, lambda n, d, at, node=node: got[node].append((n, d, at))
        )
        await transports[node].start()
    try:
        hello, lsa = b"X0\x02\x01hello", b"X0\x02\x02lsa"
        sent_at = time.monotonic()
        transports["n0"].send("n1", hello)
        transports["n0"].send("n1", lsa)

        async def lsa_came() -> bool:
            return len(got["n1"]) == 1

        await async_wait_for(lsa_came, timeout_s=5)
        assert got["n1"] == [("n0", lsa, None)]  # the LSA socket is watched by the loop
        await asyncio.sleep(0.05)  # the hello waits in its socket for the owner's tick
        polled_at = time.monotonic()
        assert transports["n1"].poll() == 1
        neighbor, data, arrived = got["n1"][1]
        assert (neighbor, data) == ("n0", hello)
        assert arrived is not None and sent_at <= arrived < polled_at - 0.04
        previous_poll = time.monotonic()
        assert transports["n1"].poll() == 0
        assert transports["n1"].counters.received == 2
        # The wall clock steps 5 s forward between the kernel's stamp and the read: the
        # hello is not taken for 5 s old, it arrived after the previous poll.
        transports["n0"].send("n1", hello)
        await asyncio.sleep(0.05)
        wall = time.time
        monkeypatch.setattr(time, "time", lambda: wall() + 5.0)
        assert transports["n1"].poll() == 1
        monkeypatch.undo()
        arrived = got["n1"][2][2]
        assert arrived is not None and previous_poll <= arrived <= time.monotonic()
    finally:
        for transport in transports.values():
            transport.close()


def test_the_mesh_port_leaves_room_for_the_lsa_port() -> None:
    with pytest.raises(ConfigError, match="65534"):
        UdpTransport(None, {}, lambda n, d, at: None, port=65535)
