"""The tracepoint programs: drops by reason and interface, TCP retransmissions.

Drop-reason names are read from the running kernel's tracefs (the
``__print_symbolic`` table in ``skb/kfree_skb/format``), never from headers:
the enum grows with every kernel release and the installed headers may be
older than the kernel.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from x0tta6bl4 import loggers
from x0tta6bl4.ebpf import _sys
from x0tta6bl4.ebpf._btf import Btf
from x0tta6bl4.ebpf._compile import Compiled, compile_source, require_btf
from x0tta6bl4.ebpf.programs import DropCount, RetransCount, decode_drops, decode_retrans
from x0tta6bl4.errors import KernelFeatureError

__all__ = [
    "TRACEFS_ROOTS",
    "Tracepoints",
    "drop_reason_name",
    "kernel_offsets",
    "parse_drop_reasons",
    "read_drop_reasons",
]

log = loggers.ebpf

TRACEFS_ROOTS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
_SYMBOLIC = re.compile(r"__print_symbolic\(\s*REC->reason\s*,(?P<table>.*)\)", re.S)
_PAIR = re.compile(r"\{\s*(\d+)\s*,\s*\"([A-Za-z0-9_]+)\"\s*\}")

# Tracepoint -> the function TRACEPOINT_PROBE names for it in bpf/x0_trace.c.
_EVENTS = {
    "skb:kfree_skb": "tracepoint__skb__kfree_skb",
    "tcp:tcp_retransmit_skb": "tracepoint__tcp__tcp_retransmit_skb",
}
# (macro, struct, member path) for the pointer walks in bpf/x0_trace.c.
_OFFSETS = (
    ("X0_SKB_DEV", "sk_buff", "dev"),
    ("X0_DEV_IFINDEX", "net_device", "ifindex"),
    ("X0_DEV_NET", "net_device", "nd_net.net"),
    ("X0_NET_INUM", "net", "ns.inum"),
    ("X0_SK_NET", "sock", "__sk_common.skc_net.net"),
)


def parse_drop_reasons(format_text: str) -> dict[int, str]:
    """The reason table of a ``kfree_skb`` tracefs format file: code -> name."""
    match = _SYMBOLIC.search(format_text)
    if match is None:
        return {}
    return {int(code): name for code, name in _PAIR.findall(match.group("table"))}


@cache
def read_drop_reasons() -> dict[int, str]:
    """Drop reasons of the running kernel (empty when tracefs is not mounted)."""
    for root in TRACEFS_ROOTS:
        path = root / "events" / "skb" / "kfree_skb" / "format"
        try:
            return parse_drop_reasons(path.read_text())
        except OSError:
            continue
    log.warning("drop_reasons_unavailable", searched=[str(r) for r in TRACEFS_ROOTS])
    return {}


def drop_reason_name(code: int) -> str:
    return read_drop_reasons().get(code, f"REASON_{code}")


def kernel_offsets(btf: Btf | None = None) -> dict[str, int]:
    """Byte offsets the tracepoint programs need, from the running kernel's BTF."""
    btf = btf or Btf.from_file(require_btf())
    return {macro: btf.offset(struct, path) for macro, struct, path in _OFFSETS}


class Tracepoints:
    """``skb:kfree_skb`` and ``tcp:tcp_retransmit_skb``, attached while this object lives.

    Tracepoint attachments belong to the process (perf events): they vanish
    with it, so they need no stale-attachment cleanup.
    """

    def __init__(self, max_keys: int = 4096) -> None:
        if not any((root / "events" / "skb").is_dir() for root in TRACEFS_ROOTS):
            raise KernelFeatureError(
                "tracefs is not mounted: the drop and retransmit tracepoints are unavailable",
                fix="mount -t tracefs tracefs /sys/kernel/tracing (`make run` does as root)",
            )
        defines = {**kernel_offsets(), "X0_MAX_KEYS": max_keys}
        self._compiled: Compiled | None = compile_source(["x0_trace.c"], {}, defines)
        self._drops_fd = self._compiled.table_fd("x0_drops")
        self._retrans_fd = self._compiled.table_fd("x0_retrans")
        read_drop_reasons()
        log.info("tracepoints_attached", events=["skb:kfree_skb", "tcp:tcp_retransmit_skb"])

    def read(self) -> tuple[list[DropCount], list[RetransCount]]:
        """Cumulative drops and retransmissions since the programs were attached."""
        if self._compiled is None:
            return [], []
        ncpu = _sys.possible_cpus()
        drops = decode_drops(_sys.map_items(self._drops_fd, 12, 8, per_cpu=True), ncpu)
        retrans = decode_retrans(_sys.map_items(self._retrans_fd, 24, 8, per_cpu=True), ncpu)
        return drops, retrans

    def set_attached(self, attached: bool) -> None:
        """Detach or re-attach both tracepoints without recompiling; maps keep their counts."""
        if self._compiled is None:
            return
        bpf = self._compiled.bpf
        for event, function in _EVENTS.items():
            is_attached = event.encode() in bpf.tracepoint_fds
            if attached and not is_attached:
                bpf.attach_tracepoint(tp=event.encode(), fn_name=function.encode())
            elif not attached and is_attached:
                bpf.detach_tracepoint(event.encode())

    def prog_ids(self) -> list[int]:
        if self._compiled is None:
            return []
        return [_sys.prog_info(fn.fd).id for fn in self._compiled.bpf.funcs.values() if fn.fd >= 0]

    def close(self) -> None:
        """Detach both tracepoints; idempotent."""
        if self._compiled is not None:
            self._compiled.close()
            self._compiled = None
            log.info("tracepoints_detached")
