"""Map decoding (per-CPU sums) and the drop-reason table parsed from tracefs text."""

from __future__ import annotations

import struct

from x0tta6bl4.ebpf.programs import decode_drops, decode_iface, decode_retrans, l3_name, l4_name
from x0tta6bl4.ebpf.tracing import parse_drop_reasons

NCPU = 3


def _percpu(*pairs: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack(f"<{len(p)}Q", *p) for p in pairs)


def test_iface_rows_sum_every_cpu_slot() -> None:
    items = [
        (struct.pack("<IHBB", 7, 0x0800, 17, 0), _percpu((1, 100), (2, 200), (3, 300))),
        (struct.pack("<IHBB", 7, 0x86DD, 58, 2), _percpu((0, 0), (5, 450), (0, 0))),
        (struct.pack("<IHBB", 9, 0x0806, 0, 1), _percpu((1, 42), (0, 0), (0, 0))),
    ]
    rows = decode_iface(items, NCPU)
    assert [(r.ifindex, r.hook, r.l3, r.l4, r.packets, r.bytes) for r in rows] == [
        (7, "xdp", "ipv4", "udp", 6, 600),
        (7, "tc_egress", "ipv6", "icmpv6", 5, 450),
        (9, "tc_ingress", "arp", "none", 1, 42),
    ]


def test_empty_maps_decode_to_nothing() -> None:
    assert decode_iface([], NCPU) == []
    assert decode_drops([], NCPU) == []
    assert decode_retrans([], NCPU) == []


def test_drop_and_retransmit_rows() -> None:
    drops = decode_drops(
        [(struct.pack("<III", 4026531840, 3, 12), _percpu((4,), (0,), (6,)))], NCPU
    )
    assert [(d.netns_inode, d.ifindex, d.reason, d.drops) for d in drops] == [
        (4026531840, 3, 12, 10)
    ]
    v4 = struct.pack("<IHH", 11, 2, 5201) + bytes([10, 0, 0, 2]) + bytes(12)
    v6 = struct.pack("<IHH", 11, 10, 443) + bytes.fromhex("fe800000000000000000000000000001")
    rows = decode_retrans([(v4, _percpu((1,), (1,), (1,))), (v6, _percpu((2,), (0,), (0,)))], NCPU)
    assert [(r.netns_inode, r.daddr, r.dport, r.retransmits) for r in rows] == [
        (11, "10.0.0.2", 5201, 3),
        (11, "fe80::1", 443, 2),
    ]


def test_protocol_names() -> None:
    assert l3_name(0x0800) == "ipv4"
    assert l3_name(0x88CC) == "0x88cc"
    assert l4_name(6) == "tcp"
    assert l4_name(255) == "unparsed"
    assert l4_name(47) == "47"


FORMAT = """name: kfree_skb
ID: 2310
format:
\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: "skbaddr=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->protocol, \
REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, \
{ 12, "NETFILTER_DROP" }, { 128, "MAX" })
"""


def test_drop_reasons_come_from_the_print_fmt_table() -> None:
    reasons = parse_drop_reasons(FORMAT)
    assert reasons == {2: "NOT_SPECIFIED", 3: "NO_SOCKET", 12: "NETFILTER_DROP", 128: "MAX"}
    assert parse_drop_reasons('print fmt: "no table"') == {}
