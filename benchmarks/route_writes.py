"""CPU per kernel route write and per route read: pyroute2 against ``mesh/rtnetlink.py``.

In one namespace with a veth, the same /32 routes are written (replace, with a
gateway, interface, metric, protocol 211 and preferred source) one by one with
pyroute2's ``IPRoute.route`` (the baseline, what ``KernelRoutes`` used before),
one by one with ``KernelRoutes.replace`` and as one batch with ``KernelRoutes.write``;
then all of them are read back with pyroute2's ``get_routes`` and with
``KernelRoutes.read``.  Also the carrier watcher's parse of one link message:
pyroute2's ``MarshalRtnl`` against ``rtnetlink.decode_link``.  CPU is the worker
thread's own (``time.thread_time``), so other load on the host does not count.
Run as root: ``python benchmarks/route_writes.py [--quick]``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import console, parse_args, report

from x0tta6bl4.mesh.kernel_routes import PRIMARY_METRIC, ROUTE_PROTO, KernelRoutes, NextHop
from x0tta6bl4.mesh.nsutil import NetnsWorker, create_netns, delete_netns
from x0tta6bl4.mesh.rtnetlink import RTM_NEWLINK, decode_link, messages

GATEWAY, SOURCE = "10.98.0.2", "10.255.9.9"
LINK_PARSES = 200


def cpu_ms_each(fn: Callable[[], Any], count: int) -> float:
    """CPU milliseconds of this thread per item while ``fn`` handles ``count`` items."""
    started = time.thread_time()
    fn()
    return (time.thread_time() - started) * 1e3 / count


def setup(ns: str) -> None:
    create_netns(ns)
    for cmd in (
        "link add va type veth peer name vb",
        "link set lo up",
        "link set va up",
        "link set vb up",
        "addr add 10.98.0.1/24 dev va",
        f"addr add {SOURCE}/32 dev lo",
    ):
        subprocess.run(["ip", "-n", ns, *cmd.split()], check=True)


def measure(ipr: Any, count: int) -> dict[str, float]:
    """Every figure, on the namespace's worker thread (``ipr`` is its pyroute2 socket)."""
    kernel, hop = KernelRoutes(), NextHop("va", GATEWAY)
    oif = kernel.ifindex(ipr, "va")

    def addresses(block: int) -> list[str]:
        return [f"10.{block}.{i // 250}.{i % 250 + 1}" for i in range(count)]

    def pyroute2_writes() -> None:
        for dst in addresses(200):
            ipr.route(
                "replace", dst=dst, dst_len=32, gateway=GATEWAY, oif=oif, priority=PRIMARY_METRIC,
                proto=ROUTE_PROTO, table=254, prefsrc=SOURCE,
            )  # fmt: skip

    def ours_one_by_one() -> None:
        for dst in addresses(201):
            kernel.replace(ipr, dst, hop, SOURCE, PRIMARY_METRIC)

    def ours_batched() -> None:
        writes = [(dst, PRIMARY_METRIC, hop, SOURCE) for dst in addresses(202)]
        errors = [e for e in kernel.write(ipr, writes) if e is not None]
        if errors:
            raise errors[0]

    figures = {
        "write.pyroute2_ms": cpu_ms_each(pyroute2_writes, count),
        "write.ours_ms": cpu_ms_each(ours_one_by_one, count),
        "write.ours_batched_ms": cpu_ms_each(ours_batched, count),
    }
    held = len(kernel.read(ipr))
    if held != 3 * count:
        raise RuntimeError(f"{held} routes of ours in the kernel, {3 * count} written")
    figures["read.pyroute2_ms_per_route"] = cpu_ms_each(
        lambda: ipr.get_routes(family=2, table=254, proto=ROUTE_PROTO), held
    )
    figures["read.ours_ms_per_route"] = cpu_ms_each(lambda: kernel.read(ipr), held)
    figures.update(link_parse(ipr))
    return figures


def link_parse(ipr: Any) -> dict[str, float]:
    """One RTM_NEWLINK message of the veth, parsed by pyroute2 and by ``decode_link``."""
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl

    raw = ipr.get_links(ipr.link_lookup(ifname="va")[0])[0].data
    ((_kind, _flags, _seq, payload),) = [m for m in messages(raw) if m[0] == RTM_NEWLINK]
    if decode_link(payload)[0] != "va":
        raise RuntimeError("decode_link did not find the interface's name")
    marshal = MarshalRtnl()
    return {
        "link_parse.pyroute2_ms": cpu_ms_each(
            lambda: [list(marshal.parse(raw)) for _ in range(LINK_PARSES)], LINK_PARSES
        ),
        "link_parse.ours_ms": cpu_ms_each(
            lambda: [decode_link(payload) for _ in range(LINK_PARSES)], LINK_PARSES
        ),
    }


def main() -> None:
    args = parse_args("route_writes", __doc__.splitlines()[0])
    if os.geteuid() != 0:
        raise SystemExit("benchmarks/route_writes.py needs root (a network namespace)")
    count = 50 if args.quick else 500
    ns = f"x0-bench-rt-{os.getpid() % 100000}"
    console.print(f"{count} routes per way of writing, in namespace {ns}")
    setup(ns)
    try:
        with NetnsWorker(ns) as worker:
            figures = worker.call(lambda ipr: measure(ipr, count), timeout_s=600)
    finally:
        delete_netns(ns)
    figures["routes"] = count
    figures["ratio.write.pyroute2_over_ours"] = (
        figures["write.pyroute2_ms"] / figures["write.ours_ms"]
    )
    figures["ratio.write.pyroute2_over_ours_batched"] = (
        figures["write.pyroute2_ms"] / figures["write.ours_batched_ms"]
    )
    figures["ratio.read.pyroute2_over_ours"] = (
        figures["read.pyroute2_ms_per_route"] / figures["read.ours_ms_per_route"]
    )
    figures["ratio.link_parse.pyroute2_over_ours"] = (
        figures["link_parse.pyroute2_ms"] / figures["link_parse.ours_ms"]
    )
    report("route_writes", args, figures)


if __name__ == "__main__":
    main()
