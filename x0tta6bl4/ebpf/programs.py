"""The programs we ship, what they are called in the kernel, and how their maps read.

Map layouts mirror ``bpf/x0_common.h`` and ``bpf/x0_trace.c``; the decoders sum
the per-CPU slots with numpy, so reading a map costs one ``bpf(2)`` batch call
and a few array operations however many CPUs the machine has.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

__all__ = [
    "HOOK_NAMES",
    "IFACE_FUNCTIONS",
    "IFACE_SOURCES",
    "PROGRAM_PREFIX",
    "DropCount",
    "IfaceCount",
    "ProgramKind",
    "RetransCount",
    "decode_drops",
    "decode_iface",
    "decode_retrans",
    "l3_name",
    "l4_name",
]

PROGRAM_PREFIX = "x0_"
"""Every program we attach to an interface has a kernel name starting with this."""

BPF_PROG_TYPE_SCHED_CLS = 3
BPF_PROG_TYPE_XDP = 6


class ProgramKind(StrEnum):
    """What :meth:`~x0tta6bl4.ebpf.loader.Loader.attach` can put on an interface."""

    XDP = "xdp"
    """Per-interface receive counters at the driver (or generic) XDP hook."""
    TC = "tc"
    """Ingress and egress counters on the clsact qdisc (direct action)."""

    @property
    def functions(self) -> dict[str, int]:
        if self is ProgramKind.XDP:
            return {"x0_xdp": BPF_PROG_TYPE_XDP}
        return {"x0_tc_ingress": BPF_PROG_TYPE_SCHED_CLS, "x0_tc_egress": BPF_PROG_TYPE_SCHED_CLS}

    @property
    def counter_map(self) -> str:
        return f"x0_{self.value}_counters"


IFACE_SOURCES = ("x0_xdp.c", "x0_tc.c")
"""Compiled together into one module: one clang run covers both program kinds."""
IFACE_FUNCTIONS = {**ProgramKind.XDP.functions, **ProgramKind.TC.functions}

HOOK_NAMES = {0: "xdp", 1: "tc_ingress", 2: "tc_egress"}
_L3 = {0x0800: "ipv4", 0x86DD: "ipv6", 0x0806: "arp", 0x8100: "vlan", 0x88A8: "qinq"}
_L4 = {0: "hopopt", 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 255: "unparsed"}

_IFACE_KEY = np.dtype([("ifindex", "<u4"), ("l3", "<u2"), ("l4", "u1"), ("hook", "u1")])
_DROP_KEY = np.dtype([("netns", "<u4"), ("ifindex", "<u4"), ("reason", "<u4")])
_RETRANS_KEY = np.dtype(
    [("netns", "<u4"), ("family", "<u2"), ("dport", "<u2"), ("daddr", "u1", (16,))]
)


def l3_name(ethertype: int) -> str:
    return _L3.get(ethertype, f"0x{ethertype:04x}")


def l4_name(proto: int) -> str:
    return _L4.get(proto, str(proto))


@dataclass(frozen=True)
class IfaceCount:
    """Cumulative packets and bytes of one (interface, hook, L3, L4) since attach."""

    ifindex: int
    hook: str
    l3: str
    l4: str
    packets: int
    bytes: int


@dataclass(frozen=True)
class DropCount:
    netns_inode: int
    ifindex: int
    reason: int
    drops: int


@dataclass(frozen=True)
class RetransCount:
    netns_inode: int
    daddr: str
    dport: int
    retransmits: int


def _split(
    items: list[tuple[bytes, bytes]], key_dtype: np.dtype, ncpu: int, words: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keys as a structured array, values summed over CPUs as ``[rows, words]`` u64."""
    keys = np.frombuffer(b"".join(k for k, _ in items), dtype=key_dtype)
    raw = np.frombuffer(b"".join(v for _, v in items), dtype="<u8")
    values = raw.reshape(len(items), ncpu, words).sum(axis=1, dtype=np.uint64)
    return keys, values


def decode_iface(items: list[tuple[bytes, bytes]], ncpu: int) -> list[IfaceCount]:
    """Rows of an ``x0_*_counters`` map (key ``x0_iface_key``, value ``x0_counter``)."""
    if not items:
        return []
    keys, values = _split(items, _IFACE_KEY, ncpu, 2)
    return [
        IfaceCount(
            ifindex=int(k["ifindex"]),
            hook=HOOK_NAMES.get(int(k["hook"]), f"hook{int(k['hook'])}"),
            l3=l3_name(int(k["l3"])),
            l4=l4_name(int(k["l4"])) if int(k["l3"]) in (0x0800, 0x86DD) else "none",
            packets=int(v[0]),
            bytes=int(v[1]),
        )
        for k, v in zip(keys, values, strict=True)
    ]


def decode_drops(items: list[tuple[bytes, bytes]], ncpu: int) -> list[DropCount]:
    if not items:
        return []
    keys, values = _split(items, _DROP_KEY, ncpu, 1)
    return [
        DropCount(int(k["netns"]), int(k["ifindex"]), int(k["reason"]), int(v[0]))
        for k, v in zip(keys, values, strict=True)
    ]


def _address(family: int, raw: np.ndarray) -> str:
    data = bytes(raw)
    if family == 10:
        return str(ipaddress.IPv6Address(data))
    return str(ipaddress.IPv4Address(data[:4]))


def decode_retrans(items: list[tuple[bytes, bytes]], ncpu: int) -> list[RetransCount]:
    if not items:
        return []
    keys, values = _split(items, _RETRANS_KEY, ncpu, 1)
    return [
        RetransCount(
            int(k["netns"]), _address(int(k["family"]), k["daddr"]), int(k["dport"]), int(v[0])
        )
        for k, v in zip(keys, values, strict=True)
    ]
