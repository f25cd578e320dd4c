"""The loader on real namespaces: XDP modes, TC, counters vs kernel statistics, clean detach,
the documented errors, and stale-attachment cleanup after a crash."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.integration.ebpf_net import (
    VethPair,
    sh,
    sysfs_stats,
    tcp_transfer,
    udp_blast,
    veth_pair,
)
from x0tta6bl4.ebpf import Loader, _sys, scan
from x0tta6bl4.ebpf._compile import compile_source
from x0tta6bl4.errors import (
    AttachConflictError,
    ConfigError,
    InterfaceDownError,
    InterfaceNotFoundError,
    KernelFeatureError,
    VerifierError,
)

pytestmark = [pytest.mark.root, pytest.mark.bpf]

ETH_HLEN = 14


@pytest.fixture
def pair() -> Iterator[VethPair]:
    with veth_pair() as p:
        yield p


@pytest.fixture
def loader(tmp_path: Path) -> Iterator[Loader]:
    with Loader(tmp_path / "state") as ld:
        yield ld


def bpftool_net(ns: str) -> dict:
    return json.loads(sh("bpftool", "-j", "net", "show", ns=ns))[0]


def test_xdp_modes_the_kernel_offers_with_reported_fallback(pair: VethPair, loader: Loader) -> None:
    auto = loader.attach("xdp", pair.if_a, netns=pair.ns_a)
    assert auto.mode == "skb", "on a veth auto passes over native mode (it costs the peer GSO)"
    assert [f.mode for f in auto.fallbacks] == ["hw", "drv"], "offload tried, native skipped"
    assert "hw mode" in auto.fallbacks[0].reason
    assert "GSO" in auto.fallbacks[1].reason and "mode=drv" in auto.fallbacks[1].reason
    native = loader.attach("xdp", pair.if_b, "drv", netns=pair.ns_b)
    assert (native.mode, native.fallbacks) == ("drv", ()), "veth has native XDP when asked"
    assert bpftool_net(pair.ns_a)["xdp"][0]["mode"] == "generic"
    assert bpftool_net(pair.ns_b)["xdp"][0]["mode"] == "driver"
    assert loader.attach("xdp", pair.if_a, netns=pair.ns_a) == auto, "attach is idempotent"
    loader.detach("xdp", pair.if_b, netns=pair.ns_b)
    with pytest.raises(KernelFeatureError, match=r"no XDP mode works.*hw"):
        loader.attach("xdp", pair.if_b, "hw", netns=pair.ns_b)
    assert bpftool_net(pair.ns_b)["xdp"] == [], "a refused mode leaves nothing attached"


def _totals(loader: Loader) -> tuple[dict, dict]:
    totals: dict[tuple[str | None, str], list[int]] = {}
    protocols: dict[tuple[str | None, str, str], int] = {}
    for netns, _ifname, c in loader.read_counters():
        total = totals.setdefault((netns, c.hook), [0, 0])
        total[0] += c.packets
        total[1] += c.bytes
        protocols[(netns, c.hook, c.l4)] = protocols.get((netns, c.hook, c.l4), 0) + c.packets
    return totals, protocols


def test_counters_match_kernel_statistics(pair: VethPair, loader: Loader) -> None:
    ends = ((pair.ns_a, pair.if_a), (pair.ns_b, pair.if_b))
    for ns, ifname in ends:
        loader.attach("xdp", ifname, "drv", netns=ns)  # native: the veth counts wire frames
        loader.attach("tc", ifname, netns=ns)
    kernel_before = {ns: sysfs_stats(ns, i) for ns, i in ends}
    ours_before, protocols_before = _totals(loader)
    udp_blast(pair.ns_a, pair.ip_b, 9, 3000, size=300)
    sh("ping", "-c", "20", "-i", "0.01", "-q", pair.ip_b, ns=pair.ns_a)
    tcp_transfer(pair, 8_000_000)  # GSO/GRO buffers count as the frames they are on the wire
    kernel_after = {ns: sysfs_stats(ns, i) for ns, i in ends}
    ours_after, protocols_after = _totals(loader)

    def ours(ns: str, hook: str) -> list[int]:
        before = ours_before.get((ns, hook), [0, 0])
        return [a - b for a, b in zip(ours_after[(ns, hook)], before, strict=True)]

    for ns, _ifname in ends:
        k = {key: kernel_after[ns][key] - kernel_before[ns][key] for key in kernel_after[ns]}
        # A veth whose receiving end runs native XDP moves frames through NAPI and counts
        # rx_bytes and the peer's tx_bytes without the 14-byte Ethernet header; both ends
        # run native XDP here.  Our programs count whole frames.
        rx_frames = k["rx_bytes"] + ETH_HLEN * k["rx_packets"]
        tx_frames = k["tx_bytes"] + ETH_HLEN * k["tx_packets"]
        assert ours(ns, "xdp") == [k["rx_packets"], rx_frames]
        assert ours(ns, "tc_ingress") == [k["rx_packets"], rx_frames]
        assert ours(ns, "tc_egress") == [k["tx_packets"], tx_frames]

    def grew(key: tuple[str, str, str]) -> int:
        return protocols_after[key] - protocols_before.get(key, 0)

    assert grew((pair.ns_b, "xdp", "udp")) == 3000
    assert grew((pair.ns_a, "tc_egress", "udp")) == 3000
    assert grew((pair.ns_b, "xdp", "icmp")) == 20
    assert grew((pair.ns_b, "xdp", "tcp")) > 8_000_000 // 1500


@pytest.mark.parametrize("xdp_mode", ["skb", "drv"])
def test_tc_ingress_counts_the_same_beside_either_xdp_mode(
    pair: VethPair, loader: Loader, xdp_mode: str
) -> None:
    """After generic XDP the kernel hands TC ingress buffers that start at the network
    header; TC must still classify them and count the Ethernet header."""
    loader.attach("xdp", pair.if_b, xdp_mode, netns=pair.ns_b)
    loader.attach("tc", pair.if_b, netns=pair.ns_b)

    def udp_rows() -> dict[str, tuple[int, int]]:
        return {
            c.hook: (c.packets, c.bytes)
            for _ns, _if, c in loader.read_counters()
            if (c.l3, c.l4) == ("ipv4", "udp")
        }

    udp_blast(pair.ns_a, pair.ip_b, 9, 100, size=1000)
    frame = ETH_HLEN + 20 + 8 + 1000
    assert udp_rows() == {"xdp": (100, 100 * frame), "tc_ingress": (100, 100 * frame)}


def test_native_xdp_takes_jumbo_frames_whole(pair: VethPair, loader: Loader) -> None:
    """The XDP program is frags-aware: a veth peer with a 9000-byte MTU still gets native
    XDP (a single-buffer program is refused above ~3.5 kB), and a frame spanning several
    buffers is counted with its full length."""
    for ns, ifname in ((pair.ns_a, pair.if_a), (pair.ns_b, pair.if_b)):
        sh("ip", "link", "set", ifname, "mtu", "9000", ns=ns)
    assert loader.attach("xdp", pair.if_b, "drv", netns=pair.ns_b).mode == "drv"

    def udp() -> list[int]:
        return [
            sum(getattr(c, what) for _ns, _if, c in loader.read_counters() if c.l4 == "udp")
            for what in ("packets", "bytes")
        ]

    before = udp()
    udp_blast(pair.ns_a, pair.ip_b, 9, 200, size=8000)
    after = udp()
    frame = ETH_HLEN + 20 + 8 + 8000
    assert [a - b for a, b in zip(after, before, strict=True)] == [200, 200 * frame]


def test_detach_leaves_nothing_behind(pair: VethPair, tmp_path: Path) -> None:
    sh("tc", "qdisc", "add", "dev", pair.if_b, "clsact", ns=pair.ns_b)  # someone else's clsact
    loader = Loader(tmp_path / "state")
    loader.attach("xdp", pair.if_a, netns=pair.ns_a)
    a_tc = loader.attach("tc", pair.if_a, netns=pair.ns_a)
    b_tc = loader.attach("tc", pair.if_b, netns=pair.ns_b)
    assert (a_tc.clsact_created, b_tc.clsact_created) == (True, False)
    assert len(bpftool_net(pair.ns_a)["tc"]) == 2
    assert list((tmp_path / "state").glob("*.json")), "attachments are recorded"

    assert loader.detach("tc", pair.if_a, netns=pair.ns_a)
    assert not loader.detach("tc", pair.if_a, netns=pair.ns_a), "detach is idempotent"
    loader.close()
    loader.close()

    for ns, ifname in ((pair.ns_a, pair.if_a), (pair.ns_b, pair.if_b)):
        net = bpftool_net(ns)
        assert net["xdp"] == [] and net["tc"] == []
        for hook in ("ingress", "egress"):
            assert sh("tc", "filter", "show", "dev", ifname, hook, ns=ns).strip() == ""
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", pair.if_a, ns=pair.ns_a)
    assert "clsact" in sh("tc", "qdisc", "show", "dev", pair.if_b, ns=pair.ns_b), (
        "a clsact we did not create stays"
    )
    assert not list((tmp_path / "state").glob("*.json"))


def test_bad_interfaces_give_the_documented_errors(pair: VethPair, loader: Loader) -> None:
    with pytest.raises(InterfaceNotFoundError, match="no interface nope0") as missing:
        loader.attach("xdp", "nope0", netns=pair.ns_a)
    assert "ip -n" in missing.value.fix
    with pytest.raises(InterfaceNotFoundError, match="namespace x0ebpf-none does not exist"):
        loader.attach("tc", pair.if_a, netns="x0ebpf-none")
    sh("ip", "link", "set", pair.if_a, "down", ns=pair.ns_a)
    with pytest.raises(InterfaceDownError, match="is down") as down:
        loader.attach("tc", pair.if_a, netns=pair.ns_a)
    assert "link set x0ea up" in down.value.fix
    with pytest.raises(ConfigError, match="unknown program"):
        loader.attach("kprobe", pair.if_b, netns=pair.ns_b)
    with pytest.raises(ConfigError, match="XDP only"):
        loader.attach("tc", pair.if_b, "drv", netns=pair.ns_b)
    assert loader.attachments() == []


def test_foreign_and_live_owned_programs_are_not_taken_over(
    pair: VethPair, loader: Loader, tmp_path: Path
) -> None:
    from bcc import BPF

    from x0tta6bl4.ebpf._netlink import rtnl

    foreign = BPF(text=b"int other_xdp(struct xdp_md *ctx) { return XDP_PASS; }")
    fn = foreign.load_func(b"other_xdp", BPF.XDP)
    with rtnl(pair.ns_a) as ipr:  # a socket made inside the namespace (no fork)
        index = ipr.link_lookup(ifname=pair.if_a)[0]
        ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", fn.fd), ("IFLA_XDP_FLAGS", 4)]})
        try:
            with pytest.raises(AttachConflictError, match=r"other_xdp.*another program"):
                loader.attach("xdp", pair.if_a, netns=pair.ns_a)
            assert bpftool_net(pair.ns_a)["xdp"][0]["id"] == _sys.prog_info(fn.fd).id, (
                "the foreign program is left in place"
            )
        finally:
            ipr.link("set", index=index, xdp={"attrs": [("IFLA_XDP_FD", -1)]})
            foreign.cleanup()

    loader.attach("xdp", pair.if_b, netns=pair.ns_b)
    with Loader(tmp_path / "state") as rival:
        with pytest.raises(AttachConflictError, match=r"x0_xdp.*x0tta6bl4 owner"):
            rival.attach("xdp", pair.if_b, netns=pair.ns_b)
        loader.attach("tc", pair.if_b, netns=pair.ns_b)
        with pytest.raises(AttachConflictError, match="TC ingress filter"):
            rival.attach("tc", pair.if_b, netns=pair.ns_b)
    assert len(bpftool_net(pair.ns_b)["tc"]) == 2


def test_verifier_rejection_carries_the_log(tmp_path: Path) -> None:
    (tmp_path / "x0_bad.c").write_text(
        "int x0_bad(struct xdp_md *ctx) {\n"
        "    void *data = (void *)(long)ctx->data;\n"
        "    return *(unsigned char *)(data + 100);\n"
        "}\n"
    )
    with pytest.raises(VerifierError) as rejected:
        compile_source(["x0_bad.c"], {"x0_bad": 6}, directory=tmp_path)
    assert "invalid access to packet" in rejected.value.log
    assert "verifier log" in rejected.value.fix


_CRASHING_OWNER = """
import os, sys
from x0tta6bl4.ebpf import Loader
loader = Loader(sys.argv[1])
loader.attach("xdp", sys.argv[3], netns=sys.argv[2])
loader.attach("tc", sys.argv[3], netns=sys.argv[2])
print("attached", flush=True)
os.kill(os.getpid(), 9)
"""


def test_stale_attachments_of_a_crashed_owner_are_removed(pair: VethPair, tmp_path: Path) -> None:
    state = tmp_path / "state"
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_OWNER, str(state), pair.ns_a, pair.if_a],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "attached" in crashed.stdout
    net = bpftool_net(pair.ns_a)
    assert net["xdp"] and len(net["tc"]) == 2, "a crash leaves the programs attached"
    found = scan([pair.ns_a], Loader(state).store)
    assert {(f.program.value, f.owner_alive) for f in found} == {("xdp", False), ("tc", False)}

    with Loader(state) as fresh:
        removed = fresh.cleanup_stale([pair.ns_a])
    assert removed == [], "the dead owner's records already covered everything"
    net = bpftool_net(pair.ns_a)
    assert net["xdp"] == [] and net["tc"] == []
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", pair.if_a, ns=pair.ns_a)
    assert not list(state.glob("*.json"))


def test_unrecorded_programs_of_ours_are_swept(pair: VethPair, tmp_path: Path) -> None:
    lost = Loader(tmp_path / "lost-state")
    lost.attach("xdp", pair.if_a, netns=pair.ns_a)
    for path in (tmp_path / "lost-state").glob("*.json"):
        path.unlink()  # the record is gone: only the program name says it is ours
    with Loader(tmp_path / "state") as fresh:
        removed = fresh.cleanup_stale([pair.ns_a])
        assert [(f.program.value, f.interface, f.owner) for f in removed] == [
            ("xdp", pair.if_a, None)
        ]
        wait_for(lambda: bpftool_net(pair.ns_a)["xdp"] == [], 5, message="xdp gone")
        fresh.attach("xdp", pair.if_a, netns=pair.ns_a)
    lost.close()
