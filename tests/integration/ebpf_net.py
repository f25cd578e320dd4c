"""Real namespaces joined by a veth pair for the eBPF integration tests.

Every name carries ``x0ebpf`` and this process's pid; :meth:`VethPair.destroy`
removes the namespaces (which takes the veth and any nft table with them).
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "VethPair",
    "make_pair",
    "nft_drop",
    "sh",
    "sysfs_stats",
    "tcp_transfer",
    "udp_blast",
    "veth_pair",
]

_numbers = itertools.count(1)


def sh(*argv: str, ns: str | None = None, input_text: str | None = None) -> str:
    cmd = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=input_text).stdout


@dataclass(frozen=True)
class VethPair:
    """``ns_a/if_a`` (10.x.y.1) <-> ``ns_b/if_b`` (10.x.y.2); IPv6 off so no packet is
    sent that the test did not send."""

    ns_a: str
    ns_b: str
    if_a: str
    if_b: str
    ip_a: str
    ip_b: str

    def destroy(self) -> None:
        for ns in (self.ns_a, self.ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def make_pair() -> VethPair:
    n = next(_numbers)
    tag = f"{os.getpid()}-{n}"
    subnet = f"10.{200 + n % 50}.{os.getpid() % 250}"
    pair = VethPair(
        f"x0ebpf-{tag}-a", f"x0ebpf-{tag}-b", "x0ea", "x0eb", f"{subnet}.1", f"{subnet}.2"
    )
    try:
        for ns in (pair.ns_a, pair.ns_b):
            sh("ip", "netns", "add", ns)
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", ns=ns)
            sh("sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", ns=ns)
            sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "link", "add", pair.if_a, "type", "veth", "peer", "name", pair.if_b, ns=pair.ns_a)
        sh("ip", "link", "set", pair.if_b, "netns", pair.ns_b, ns=pair.ns_a)
        for ns, ifname, ip in (
            (pair.ns_a, pair.if_a, pair.ip_a),
            (pair.ns_b, pair.if_b, pair.ip_b),
        ):
            sh("ip", "addr", "add", f"{ip}/24", "dev", ifname, ns=ns)
            sh("ip", "link", "set", ifname, "up", ns=ns)
        # Resolve neighbours now, so the tests' own traffic is all there is later.
        sh("ping", "-c", "1", "-W", "2", pair.ip_b, ns=pair.ns_a)
    except BaseException:
        pair.destroy()
        raise
    return pair


@contextmanager
def veth_pair() -> Iterator[VethPair]:
    pair = make_pair()
    try:
        yield pair
    finally:
        pair.destroy()


def sysfs_stats(ns: str, ifname: str) -> dict[str, int]:
    """The kernel's own counters, from ``/sys/class/net/<if>/statistics`` inside ``ns``."""
    names = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")
    paths = [f"/sys/class/net/{ifname}/statistics/{n}" for n in names]
    values = sh("cat", *paths, ns=ns).split()
    return dict(zip(names, map(int, values), strict=True))


def udp_blast(ns: str, dst: str, port: int, count: int, size: int = 200) -> None:
    """Send ``count`` UDP datagrams from inside ``ns`` (a child process; nothing listens)."""
    script = (
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"[s.sendto(b'x'*{size},({dst!r},{port})) for _ in range({count})]"
    )
    sh("python3", "-c", script, ns=ns)


_TCP_SINK = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 5202))
srv.listen()
print("listening", flush=True)
conn, _ = srv.accept()
while conn.recv(1 << 20):
    pass
"""


def tcp_transfer(pair: VethPair, nbytes: int) -> None:
    """Send ``nbytes`` over one TCP connection a -> b (GSO on the sender, GRO on the receiver)."""
    sink = subprocess.Popen(
        ["ip", "netns", "exec", pair.ns_b, "python3", "-c", _TCP_SINK, pair.ip_b],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "listening"
        send = (
            "import socket,sys;c=socket.create_connection((sys.argv[1],5202));"
            f"c.sendall(b'x'*{nbytes});c.close()"
        )
        sh("python3", "-c", send, pair.ip_b, ns=pair.ns_a)
        sink.wait(timeout=30)
    finally:
        sink.kill()
        sink.wait()


def nft_drop(pair: VethPair, match: str) -> None:
    """Drop what ``match`` (an nft expression) selects at ``if_b``'s ingress, in ``ns_b``."""
    rules = (
        f"table netdev x0ebpf_{os.getpid()} {{\n chain in {{\n"
        f'  type filter hook ingress device "{pair.if_b}" priority 0\n'
        f"  {match} drop\n }}\n}}\n"
    )
    sh("nft", "-f", "-", ns=pair.ns_b, input_text=rules)
