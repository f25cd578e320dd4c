"""The BTF reader on a hand-built blob, and against bpftool on the running kernel."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest

from x0tta6bl4.ebpf._btf import VMLINUX_BTF, Btf
from x0tta6bl4.errors import KernelFeatureError


def _blob() -> bytes:
    """Types: 1 int u32; 2 struct inner {u32 pad; u32 inum}; 3 union (anon) {inner in};
    4 struct outer {u32 a; u32 b; <anon union> at 64 bits; u32 c at 160 bits}; 5 typedef
    outer_t -> 4; 6 struct bits (kind_flag) {u32 f:3 at 5 bits}."""
    strings = b"\0u32\0inner\0pad\0inum\0in\0outer\0a\0b\0c\0outer_t\0bits\0f\0"

    def off(name: str) -> int:
        return strings.index(name.encode() + b"\0")

    def rec(name: int, kind: int, vlen: int, ref: int, flag: int = 0) -> bytes:
        return struct.pack("<III", name, (flag << 31) | (kind << 24) | vlen, ref)

    def member(name: int, type_id: int, offset: int) -> bytes:
        return struct.pack("<III", name, type_id, offset)

    types = b"".join(
        [
            rec(off("u32"), 1, 0, 4) + struct.pack("<I", 32),
            rec(off("inner"), 4, 2, 8) + member(off("pad"), 1, 0) + member(off("inum"), 1, 32),
            rec(0, 5, 1, 8) + member(off("in"), 2, 0),
            rec(off("outer"), 4, 4, 24)
            + member(off("a"), 1, 0)
            + member(off("b"), 1, 32)
            + member(0, 3, 64)
            + member(off("c"), 1, 160),
            rec(off("outer_t"), 8, 0, 4),
            rec(off("bits"), 4, 1, 4, flag=1) + member(off("f"), 1, (3 << 24) | 5),
        ]
    )
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_offsets_follow_anonymous_members_and_paths() -> None:
    btf = Btf(_blob())
    assert btf.offset("outer", "a") == 0
    assert btf.offset("outer", "b") == 4
    assert btf.offset("outer", "in") == 8
    assert btf.offset("outer", "in.inum") == 12
    assert btf.offset("outer", "c") == 20
    assert btf.offset("outer_t", "in.inum") == 12


@pytest.mark.parametrize(
    ("struct_name", "path", "match"),
    [
        ("nothere", "a", "has no struct nothere"),
        ("outer", "zz", "has no member zz"),
        ("outer", "in.zz", "has no member in.zz"),
        ("bits", "f", "is a bit field"),
    ],
)
def test_lookup_errors_name_the_problem(struct_name: str, path: str, match: str) -> None:
    with pytest.raises(KernelFeatureError, match=match):
        Btf(_blob()).offset(struct_name, path)


def test_malformed_blobs_are_rejected() -> None:
    with pytest.raises(KernelFeatureError, match="magic"):
        Btf(b"\x00" * 32)
    with pytest.raises(KernelFeatureError, match="shorter"):
        Btf(b"\x9f\xeb")
    blob = _blob()
    truncated = blob[:24] + blob[24 : 24 + 20] + blob[24 + 20 :]
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 20, 20, len(blob) - 24 - 20)
    with pytest.raises(KernelFeatureError, match="mid-record"):
        Btf(header + truncated[24:])


@pytest.mark.skipif(not VMLINUX_BTF.exists(), reason="the kernel exposes no BTF")
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")
def test_running_kernel_offsets_agree_with_bpftool() -> None:
    dump = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(VMLINUX_BTF)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    types = json.loads(dump)["types"]
    net_device = next(t for t in types if t["kind"] == "STRUCT" and t["name"] == "net_device")
    ifindex = next(m for m in net_device["members"] if m["name"] == "ifindex")
    btf = Btf.from_file()
    assert btf.offset("net_device", "ifindex") == ifindex["bits_offset"] // 8
