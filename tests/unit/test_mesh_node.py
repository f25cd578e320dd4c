"""MeshNodeLogic: local repair, bad datagrams, fake links, adoption, sink failures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import ConfigError, RouteError
from x0tta6bl4.mesh.linkmon import LinkState
from x0tta6bl4.mesh.node import BACKUP_SETTLE_S, MeshNodeLogic
from x0tta6bl4.mesh.ports import Fault, FaultKind, Route
from x0tta6bl4.mesh.security import NodeKey, SecureCodec
from x0tta6bl4.mesh.sim import SimBackend, SimRouteSink
from x0tta6bl4.mesh.topology import Topology, grid, link_key, ring
from x0tta6bl4.mesh.wire import MAC_BYTES, Hello, Lsa, encode


def converged(topology: Topology, **settings: object) -> SimBackend:
    sim = SimBackend(MeshSettings(backend="sim", **settings))  # type: ignore[arg-type]
    sim.up(topology)
    assert sim.run_until(sim.converged, timeout_s=3.0) is not None
    sim.run(0.2)  # let the repeats and duplicates settle
    return sim


def path(sim: SimBackend, src: str, dst: str) -> list[str]:
    hops = [src]
    while hops[-1] != dst and len(hops) <= len(sim.nodes):
        route = sim.sinks[hops[-1]].routes.get(dst)
        if route is None:
            return [*hops, "<none>"]
        hops.append(route.next_hop)
    return hops


class SpySink(SimRouteSink):
    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__()
        self.routes = dict(routes)
        self.calls: list[tuple[list[Route], list[str]]] = []

    def apply(self, install: Sequence[Route], remove: Sequence[str]) -> None:
        self.calls.append((list(install), list(remove)))
        super().apply(install, remove)


def test_carrier_loss_switches_to_the_alternate_within_the_same_call() -> None:
    sim = converged(ring(5))
    node = sim.nodes["n0"]
    spy = SpySink(sim.sinks["n0"].routes)
    node.routes = spy
    assert node.table["n2"].next_hop == "n1"
    assert node.table["n2"].alternate == "n4"
    assert node.table["n1"].alternate is None
    before = sim.clock.now()
    sent = sim.delivered

    node.link_event("n1", up=False)

    assert sim.clock.now() == before
    # The first thing pushed to the sink is the precomputed alternate, before any flood
    # has been answered (nothing was delivered; virtual time did not move).
    first_install, first_remove = spy.calls[0]
    assert first_install == [Route("n2", "n4", 3.0)]
    assert first_remove == []
    # n1 had no alternate; the immediate local SPF found it the long way round.
    assert spy.routes["n1"].next_hop == "n4"
    assert all(route.next_hop != "n1" for route in spy.routes.values())
    assert node.counters.heal_events == 1
    assert node.counters.lfa_repairs == 1
    assert sim.delivered > sent  # the new LSA went out in the same call
    assert node.monitors["n1"].state == LinkState.DOWN


def test_routes_carry_their_alternate_for_the_forwarding_plane_to_fall_over_to() -> None:
    sim = converged(ring(5))  # mesh.fib_backups is on by default
    assert not sim.nodes["n0"].backups_settled  # the table changed 0.2 s ago
    sim.run(BACKUP_SETTLE_S)  # backups follow a table that has settled
    assert all(node.backups_settled for node in sim.nodes.values())
    routes = sim.sinks["n0"].routes
    assert (routes["n2"].next_hop, routes["n2"].backup) == ("n1", "n4")
    assert routes["n1"].backup is None  # no loop-free alternate to a direct neighbour
    # The link dies and no node has heard of it yet: the data plane takes the backup.
    sim.links[link_key("n0", "n1")].up = False
    assert sim.reachable("n0", "n2")
    assert not sim.reachable("n0", "n1")
    # Once n0 knows, the repaired route is the alternate itself, with no backup left.
    sim.nodes["n0"].link_event("n1", up=False)
    repaired = sim.sinks["n0"].routes["n2"]
    assert (repaired.next_hop, repaired.backup) == ("n4", None)
    assert not sim.nodes["n0"].backups_settled


def test_with_fib_backups_off_routes_carry_none() -> None:
    sim = converged(ring(5), fib_backups=False)
    sim.run(BACKUP_SETTLE_S)
    assert sim.nodes["n0"].table["n2"].alternate == "n4"  # still used by local repair
    assert all(
        route.backup is None for sink in sim.sinks.values() for route in sink.routes.values()
    )


def test_an_lsa_sent_for_a_link_down_keeps_the_other_links_advertised_costs() -> None:
    sim = converged(ring(5))
    node = sim.nodes["n0"]
    own = node.lsdb.get("n0")
    assert own is not None and dict(own.lsa.links)["n4"] == 1.0
    # The link to n4 measures 10 % dearer (jitter, inside the hysteresis): the LSA that
    # announces the loss of n1 must not tell n4 the link got dearer, or n4 would hold
    # its routes through n0 for repair_hold_s, routes that n1's loss may have broken.
    node.link_costs["n4"] = 1.1
    node.link_event("n1", up=False)
    own = node.lsdb.get("n0")
    assert own is not None and dict(own.lsa.links) == {"n4": 1.0}
    # A real change (beyond the hysteresis) goes out as measured.
    node.link_costs["n4"] = 1.5
    node.tick()
    own = node.lsdb.get("n0")
    assert own is not None and dict(own.lsa.links) == {"n4": 1.5}


def test_silent_failure_is_repaired_in_the_tick_that_detects_it() -> None:
    sim = converged(grid(4))
    hops = path(sim, "n0", "n15")
    u, v = hops[1], hops[2]
    sim.inject(Fault(FaultKind.LOSS, (u, v), 100.0))
    start = sim.clock.now()
    node = sim.nodes[u]
    while node.monitors[v].up:
        sim.run(0.001)
        assert sim.clock.now() - start < 0.2, "loss was never detected"
    # From the moment the link is declared down no route of u through v uses it.  The
    # route to v itself stays until v's own LSA says it lost the link (silence alone
    # could be v's control plane restarting while its kernel forwards on).
    assert all(r.next_hop != v for d, r in sim.sinks[u].routes.items() if d != v)
    assert sim.reachable("n0", "n15")
    detected = sim.clock.now() - start
    assert detected <= 4 * sim.settings.probe_interval_s + 0.002
    assert sim.run_until(lambda: sim.reachable(u, v), timeout_s=0.05) is not None
    assert sim.sinks[u].routes[v].next_hop != v


def test_bad_datagrams_are_dropped_and_counted() -> None:
    sim = converged(ring(4))
    node, n1 = sim.nodes["n0"], sim.nodes["n1"]
    lsdb_before = {entry.lsa.origin: entry.lsa.seq for entry in node.lsdb}
    routes_before = dict(sim.sinks["n0"].routes)
    wall = n1.codec.wall()
    fake_links = (("n0", 1.0), ("n2", 1.0), ("n3", 0.0))
    mallory = SecureCodec(NodeKey.generate("n1"), n1.codec.keyring, wall=n1.codec.wall)

    node.receive("n1", encode(Lsa("n1", 2**62, wall, fake_links)))  # unsigned
    node.receive("n1", mallory.seal(Lsa("n1", 2**62, wall, fake_links)))  # forged
    node.receive("n1", n1.codec.seal(Lsa("n1", 2**62, wall - 60.0, fake_links)))  # old stamp
    node.receive("n1", n1.codec.seal(Hello("n1", 1, wall, "n0", 0, 0.0, 1.0)))  # old seq
    # Hellos on the keyed n0-n1 link are MAC'd: a fresh one n1 did not send fails the tag.
    hello = Hello("n1", 2**62, wall, "n0", 0, 0.0, 1.0)
    mac = n1.codec.seal(hello)
    assert len(mac) == len(encode(hello)) + MAC_BYTES
    node.receive("n1", mac[:-1] + bytes([mac[-1] ^ 1]))  # forged tag
    node.receive("n1", mallory.seal(hello))  # a handshake signed by the wrong key: forged
    node.receive("n1", n1.codec.seal(Hello("n1", 2**62, wall, "n2", 0, 0.0, 1.0)))  # n1-n2 key
    node.receive("n3", mac)  # wrong link
    node.receive("n9", b"\x00")  # no such link
    node.receive("n1", b"X0" + bytes(9000))  # oversized
    node.receive("n1", b"X0\x01")  # malformed
    stored = node.lsdb.get("n2")
    assert stored is not None
    older = n1.codec.seal(Lsa("n2", stored.lsa.seq - 1, wall - 5.0, ()))
    node.receive("n1", older)  # signed by n1 for n2's LSA: forged too

    rejected = node.counters.rejected
    assert rejected == {
        "oversized": 1,
        "malformed": 1,
        "unsigned": 1,
        "forged": 5,
        "replayed": 2,
        "misdirected": 2,
    }
    assert {entry.lsa.origin: entry.lsa.seq for entry in node.lsdb} == lsdb_before
    assert sim.sinks["n0"].routes == routes_before


def test_an_old_authentic_lsa_is_a_replay_but_a_flooding_race_is_not() -> None:
    sim = converged(ring(4))
    node, n2 = sim.nodes["n0"], sim.nodes["n2"]
    stored = node.lsdb.get("n2")
    assert stored is not None
    wall = n2.codec.wall()
    node.receive("n1", n2.codec.seal(Lsa("n2", stored.lsa.seq - 1, wall - 0.2, ())))
    assert node.counters.stale == 1
    assert node.counters.rejected["replayed"] == 0
    node.receive("n1", n2.codec.seal(Lsa("n2", stored.lsa.seq - 2, stored.lsa.ts - 5.0, ())))
    assert node.counters.rejected["replayed"] == 1
    node.receive("n1", stored.raw)
    assert node.counters.duplicates >= 1


class LiarLogic(MeshNodeLogic):
    """A node running modified software: claims zero-cost links to n3 and n4, which it does
    not have, and zero cost on its real links."""

    def _current_links(self) -> dict[str, float]:
        links = dict.fromkeys(super()._current_links(), 0.0)
        links.update({"n3": 0.0, "n4": 0.0})
        return links


def test_fake_zero_cost_links_are_not_followed_and_the_liar_is_flagged() -> None:
    sim = converged(ring(8), byzantine_grace_s=1.0)
    honest = {name: path(sim, name, "n4") for name in sim.nodes}
    sim.restart("n0", logic=LiarLogic)
    sim.run(0.3)
    liar_lsa = sim.nodes["n1"].lsdb.get("n0")
    assert liar_lsa is not None and ("n4", 0.0) in liar_lsa.lsa.links
    for name in sim.nodes:
        if name != "n0":
            assert path(sim, name, "n4") == honest[name]
            assert path(sim, name, "n3")[-1] == "n3"
    # After the grace period every honest node flags n0 and stops using it as transit.
    sim.run(1.0)
    for name, node in sim.nodes.items():
        if name == "n0":
            continue
        flagged = node.snapshot().flagged
        assert flagged.get("n0") == ["n3", "n4"], name
    assert "n0" not in path(sim, "n1", "n7")[1:-1]
    assert sim.reachable("n1", "n0")  # isolated as transit, still reachable itself
    events = [e for e in sim.nodes["n1"].drain_events() if e.kind == "unconfirmed_links"]
    assert [(e.subject, e.detail) for e in events] == [("n0", "n3,n4")]


def test_restart_adopts_routes_without_a_flush_and_resyncs() -> None:
    sim = converged(grid(4))
    before = dict(sim.sinks["n5"].routes)
    spy = SpySink(before)
    sim.sinks["n5"] = spy
    sim.restart("n5")
    node = sim.nodes["n5"]
    assert node.installed == before
    assert len(node.lsdb) == 0  # the new logic knows nothing yet
    pairs = [(a, b) for a in sim.nodes for b in sim.nodes if a != b]
    for _ in range(60):  # 0.3 s in 5 ms steps: forwarding never breaks
        sim.run(0.005)
        assert sim.converged(pairs)
    assert len(node.lsdb) == 16  # the neighbours handed over their databases
    assert not any(remove for _, remove in spy.calls)
    assert {d: r.next_hop for d, r in spy.routes.items()} == {
        d: e.next_hop for d, e in node.table.items()
    }


def test_own_lsa_of_a_previous_incarnation_is_superseded() -> None:
    sim = converged(ring(4))
    node, n1 = sim.nodes["n0"], sim.nodes["n1"]
    ghost = node.codec.seal(Lsa("n0", node.own_seq + 10**9, node.codec.wall(), ()))
    node.receive("n1", ghost)
    assert node.own_seq > 10**9
    sim.run(0.05)
    own = n1.lsdb.get("n0")
    assert own is not None and own.lsa.seq == node.own_seq and own.lsa.links


class FailingSink(SpySink):
    def __init__(self, routes: dict[str, Route], failures: int) -> None:
        super().__init__(routes)
        self.failures = failures

    def apply(self, install: Sequence[Route], remove: Sequence[str]) -> None:
        if self.failures:
            self.failures -= 1
            raise RouteError("netlink said no", fix="retry")
        super().apply(install, remove)


def test_a_failing_sink_loses_nothing_and_is_retried_on_the_next_tick() -> None:
    sim = converged(ring(5))
    node = sim.nodes["n0"]
    sink = FailingSink(sim.sinks["n0"].routes, failures=2)
    node.routes = sink
    node.link_event("n1", up=False)  # both the repair and the SPF result fail to install
    assert node.counters.lfa_repairs == 1
    assert node.counters.route_errors == 2
    assert sink.routes["n1"].next_hop == "n1"
    assert node.installed == sink.routes  # the node knows what really is in place
    node.tick()
    assert all(route.next_hop == "n4" for route in sink.routes.values())
    assert node.installed == sink.routes


def test_isolate_and_release() -> None:
    sim = converged(ring(6))
    node = sim.nodes["n0"]
    assert path(sim, "n0", "n2") == ["n0", "n1", "n2"]
    node.isolate("n1", "blackhole")
    assert node.routes.installed()["n2"].next_hop == "n5"  # at once, locally
    sim.run(0.05)  # the withdrawn link reaches everyone: no loop through n5
    assert path(sim, "n0", "n2") == ["n0", "n5", "n4", "n3", "n2"]
    assert node.snapshot().flagged == {"n1": ["blackhole"]}
    node.release("n1")
    sim.run(0.05)
    assert path(sim, "n0", "n2") == ["n0", "n1", "n2"]
    assert [e.kind for e in node.drain_events()][-2:] == ["isolated", "released"]


def test_snapshot_and_telemetry_batch() -> None:
    sim = converged(ring(4))
    node = sim.nodes["n0"]
    snap = node.snapshot()
    assert [link.neighbor for link in snap.links] == ["n1", "n3"]
    link = snap.links[0]
    assert link.state == LinkState.UP
    assert link.etx == pytest.approx(1.0)
    assert link.rtt_ms == pytest.approx(1.0, abs=0.01)  # 0.5 ms each way
    assert snap.lsdb_size == 4
    assert set(snap.routes) == {"n1", "n2", "n3"}
    assert snap.counters["rejected_forged"] == 0
    batch = node.link_batch()
    assert batch.source == "mesh:n0"
    assert list(batch.entity) == ["n0-n1", "n0-n3"]
    assert np.array_equal(batch.metrics["up"], [1.0, 1.0])


def test_neighbors_can_be_added_and_removed() -> None:
    sim = converged(ring(4))
    node = sim.nodes["n0"]
    with pytest.raises(Exception, match="own neighbour"):
        node.add_neighbor("n0")
    node.remove_neighbor("n1")
    assert "n1" not in node.monitors
    assert all(route.next_hop != "n1" for route in sim.sinks["n0"].routes.values())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lsa_refresh_s": 10.0, "lsa_max_age_s": 15.0}, "lsa_max_age_s"),
        ({"lsa_refresh_s": 20.0, "lsa_max_age_s": 60.0, "replay_window_s": 30.0}, "replay"),
    ],
)
def test_contradictory_timers_are_config_errors(overrides: dict[str, float], match: str) -> None:
    sim = converged(ring(3))
    n0 = sim.nodes["n0"]
    with pytest.raises(ConfigError, match=match):
        MeshNodeLogic(
            "x",
            ["n0"],
            sim.clock,
            n0.transport,
            SimRouteSink(),
            n0.codec,
            MeshSettings(**overrides),  # type: ignore[arg-type]
        )


def test_a_tick_after_the_node_itself_stalled_judges_no_link() -> None:
    sim = converged(ring(3))
    node, n1 = sim.nodes["n0"], sim.nodes["n1"]
    interval = sim.settings.probe_interval_s
    stalled_at = sim.clock.now()
    # n0 does not run for five intervals; n1's hellos of that time reach its socket only
    # after n0's first tick (the kernel's receive backlog was not processed either).
    sim.clock.t += 5 * interval
    node.tick()
    assert node.monitors["n1"].up and node.monitors["n2"].up
    assert node.counters.stalled_ticks == 1
    for k in range(1, 6):
        seq, echo, delay, ratio = n1.monitors["n0"].next_hello(stalled_at + k * interval)
        hello = Hello("n1", seq, n1.codec.wall(), "n0", echo, delay, ratio)
        node.receive("n1", n1.codec.seal(hello), arrived=stalled_at + k * interval)
    # One interval later, on time: n1 was heard, n2 was not (its hellos never came).
    sim.clock.t += interval
    node.tick()
    assert node.monitors["n1"].up
    assert not node.monitors["n2"].up
    assert node.counters.stalled_ticks == 1


def test_a_host_that_stays_overloaded_still_detects_silence_a_tick_later() -> None:
    sim = converged(ring(3))
    node = sim.nodes["n0"]
    interval = sim.settings.probe_interval_s
    # Every tick comes three intervals late and no hello arrives: the first late tick
    # skips its verdicts, the next one judges anyway.
    sim.clock.t += 3 * interval
    node.tick()
    assert node.monitors["n1"].up
    sim.clock.t += 3 * interval
    node.tick()
    assert not node.monitors["n1"].up and not node.monitors["n2"].up
    assert node.counters.stalled_ticks == 1
