"""The tracepoints on real traffic: nftables drops appear with their reason, interface and
namespace; TCP retransmissions appear per peer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.helpers import wait_for
from tests.integration.ebpf_net import VethPair, nft_drop, udp_blast, veth_pair
from x0tta6bl4.ebpf import Tracepoints, read_drop_reasons
from x0tta6bl4.ebpf.agent import build_reading
from x0tta6bl4.ebpf.names import Names

pytestmark = [pytest.mark.root, pytest.mark.bpf]


@pytest.fixture(scope="module")
def tracepoints() -> Iterator[Tracepoints]:
    tp = Tracepoints()
    yield tp
    tp.close()
    tp.close()


@pytest.fixture
def pair() -> Iterator[VethPair]:
    with veth_pair() as p:
        yield p


def _drops(tp: Tracepoints, names: Names) -> dict[tuple[str, str], int]:
    reading = build_reading(0.0, [], [], tp, names)
    totals: dict[tuple[str, str], int] = {}
    for where, reason, count in reading.drops:
        totals[(where, reason)] = totals.get((where, reason), 0) + count
    return totals


def test_drop_reason_names_come_from_the_running_kernel() -> None:
    reasons = read_drop_reasons()
    assert reasons[2] == "NOT_SPECIFIED"
    assert "NETFILTER_DROP" in reasons.values()


def test_nftables_drops_appear_by_reason_and_interface(
    pair: VethPair, tracepoints: Tracepoints
) -> None:
    names = Names(refresh_s=0.0)
    where = f"{pair.ns_b}/{pair.if_b}"
    before = _drops(tracepoints, names).get((where, "NETFILTER_DROP"), 0)
    nft_drop(pair, "udp dport 7777")
    udp_blast(pair.ns_a, pair.ip_b, 7777, 250, size=64)
    after = _drops(tracepoints, names)
    assert after[(where, "NETFILTER_DROP")] - before == 250
    tracepoints.set_attached(False)
    udp_blast(pair.ns_a, pair.ip_b, 7777, 30, size=64)
    tracepoints.set_attached(True)
    udp_blast(pair.ns_a, pair.ip_b, 7777, 5, size=64)
    assert _drops(tracepoints, names)[(where, "NETFILTER_DROP")] - before == 255, (
        "nothing is counted while detached; the counts survive re-attaching"
    )
    assert not any(reason == "NETFILTER_DROP" and w.startswith(pair.ns_a) for w, reason in after), (
        "the drops are charged to the receiving interface only"
    )


_SERVER = """
import socket, sys
srv = socket.socket()
srv.bind((sys.argv[1], 5201))
srv.listen()
print("listening", flush=True)
conn, _ = srv.accept()
while conn.recv(65536):
    pass
"""

_CLIENT = """
import socket, sys, time
c = socket.create_connection((sys.argv[1], 5201), timeout=10)
print("connected", flush=True)
sys.stdin.readline()
c.setblocking(False)
try:
    c.send(b"x" * 1000)
except BlockingIOError:
    pass
time.sleep(float(sys.argv[2]))
"""


def test_tcp_retransmissions_appear_per_peer(pair: VethPair, tracepoints: Tracepoints) -> None:
    names = Names(refresh_s=0.0)
    peer = f"{pair.ns_a}/{pair.ip_b}:5201"
    server = subprocess.Popen(
        ["ip", "netns", "exec", pair.ns_b, sys.executable, "-c", _SERVER, pair.ip_b],
        stdout=subprocess.PIPE,
        text=True,
    )
    client = None
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        client = subprocess.Popen(
            ["ip", "netns", "exec", pair.ns_a, sys.executable, "-c", _CLIENT, pair.ip_b, "8"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None and client.stdout.readline().strip() == "connected"
        nft_drop(pair, "tcp dport 5201")
        assert client.stdin is not None
        client.stdin.write("go\n")
        client.stdin.flush()

        def retransmits() -> int:
            reading = build_reading(0.0, [], [], tracepoints, names)
            return sum(count for where, count in reading.retrans if where == peer)

        wait_for(lambda: retransmits() >= 2, 8, message="two retransmissions to the peer")
    finally:
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait()
