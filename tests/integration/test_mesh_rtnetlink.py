"""The lean rtnetlink client against a real namespace's kernel, with iproute2 as the judge."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers import async_wait_for
from x0tta6bl4.errors import MeshError
from x0tta6bl4.mesh.kernel_routes import KernelRoutes, NextHop
from x0tta6bl4.mesh.nsutil import NetnsWorker, create_netns, delete_netns
from x0tta6bl4.mesh.rtnetlink import RouteWrite, route_socket
from x0tta6bl4.mesh.transport import LinkWatcher

pytestmark = pytest.mark.root

PROTO, TABLE = 211, 254


def ip(ns: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", ns, *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"x0-rtnl-{os.getpid() % 100000}"
    create_netns(name)
    try:
        ip(name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        for dev in ("lo", "va", "vb"):
            ip(name, "link", "set", dev, "up")
        ip(name, "addr", "add", "10.98.0.1/24", "dev", "va")
        ip(name, "addr", "add", "10.255.9.9/32", "dev", "lo")
        yield name
    finally:
        delete_netns(name)


def ours(ns: str) -> dict[tuple[str, int], tuple[str, str, str | None]]:
    """Our routes as ``ip -j route`` shows them: (dst, metric) -> (gateway, dev, src)."""
    rows = json.loads(ip(ns, "-j", "route", "show", "proto", str(PROTO)) or "[]")
    return {(r["dst"], r["metric"]): (r["gateway"], r["dev"], r.get("prefsrc")) for r in rows}


def test_a_batch_is_applied_in_order_with_an_errno_per_write(ns: str) -> None:
    with NetnsWorker(ns) as worker:
        oif = json.loads(ip(ns, "-j", "link", "show", "va"))[0]["ifindex"]

        def batch(ipr: object) -> list[int]:
            return route_socket().write(
                [
                    RouteWrite("10.255.0.1", 10, "10.98.0.2", oif, "10.255.9.9"),
                    RouteWrite("10.255.0.1", 20, "10.98.0.3", oif),
                    RouteWrite("10.255.0.2", 10, "10.77.0.1", oif),  # gateway off-link
                    RouteWrite("10.255.0.3", 10),  # delete of a route that is not there
                    RouteWrite("10.255.0.1", 10, "10.98.0.4", oif, "10.255.9.9"),  # replace
                ],
                PROTO,
                TABLE,
            )

        assert worker.call(batch) == [0, 0, errno.ENETUNREACH, errno.ESRCH, 0]
        assert ours(ns) == {
            ("10.255.0.1", 10): ("10.98.0.4", "va", "10.255.9.9"),
            ("10.255.0.1", 20): ("10.98.0.3", "va", None),
        }
        dumped = worker.call(lambda ipr: route_socket().dump(PROTO, TABLE))
        assert sorted((r.dst, r.metric, r.gateway, r.oif, r.dst_len) for r in dumped) == [
            ("10.255.0.1", 10, "10.98.0.4", oif, 32),
            ("10.255.0.1", 20, "10.98.0.3", oif, 32),
        ]
        codes = worker.call(
            lambda ipr: route_socket().write([RouteWrite("10.255.0.1", 20)], PROTO, TABLE)
        )
        assert codes == [0]
        assert set(ours(ns)) == {("10.255.0.1", 10)}


def test_a_delete_never_touches_a_route_of_another_protocol(ns: str) -> None:
    ip(ns, "route", "add", "10.255.0.5/32", "via", "10.98.0.2", "metric", "10", "proto", "static")
    with NetnsWorker(ns) as worker:
        codes = worker.call(
            lambda ipr: route_socket().write([RouteWrite("10.255.0.5", 10)], PROTO, TABLE)
        )
        assert codes == [errno.ESRCH]
        assert worker.call(lambda ipr: route_socket().dump(PROTO, TABLE)) == []
    assert "10.255.0.5 via 10.98.0.2" in ip(ns, "route", "show", "proto", "static")


def test_each_namespace_a_thread_enters_gets_its_own_socket_closed_with_the_worker(
    ns: str,
) -> None:
    with NetnsWorker(ns) as inside, NetnsWorker(None) as host:
        assert inside.call(lambda ipr: route_socket() is route_socket())
        ours_inside = inside.call(lambda ipr: route_socket())
        assert ours_inside is not host.call(lambda ipr: route_socket())
        assert not ours_inside.closed
    assert ours_inside.closed


def test_an_interface_made_again_is_looked_up_again_after_one_failed_write(ns: str) -> None:
    kernel, hop = KernelRoutes(), NextHop("va", "10.98.0.2")
    with NetnsWorker(ns) as worker:
        worker.call(lambda ipr: kernel.replace(ipr, "10.255.0.7", hop))
        ip(ns, "link", "del", "va")
        ip(ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        for dev in ("va", "vb"):
            ip(ns, "link", "set", dev, "up")
        ip(ns, "addr", "add", "10.98.0.1/24", "dev", "va")
        with pytest.raises(MeshError, match=r"installing 10\.255\.0\.7 via"):
            worker.call(lambda ipr: kernel.replace(ipr, "10.255.0.7", hop))  # the old index
        worker.call(lambda ipr: kernel.replace(ipr, "10.255.0.7", hop))
    assert ours(ns) == {("10.255.0.7", 10): ("10.98.0.2", "va", None)}


async def test_the_carrier_watcher_reports_down_and_up_of_its_interfaces_only(ns: str) -> None:
    seen: list[tuple[str, bool]] = []
    watcher = LinkWatcher(ns, {"va"}, lambda ifname, up: seen.append((ifname, up)))
    await watcher.start()
    try:
        for state, want in (("down", ("va", False)), ("up", ("va", True))):
            await asyncio.to_thread(ip, ns, "link", "set", "vb", state)  # va's carrier

            async def reported(want: tuple[str, bool] = want) -> bool:
                return bool(seen) and seen[-1] == want

            await async_wait_for(reported, timeout_s=5, message=f"va reported {want}")
        assert all(name == "va" for name, _ in seen)
    finally:
        watcher.close()


def test_a_thousand_writes_at_once_all_land(ns: str) -> None:
    # The kernel queues an ack per write before send() returns; 500 in one datagram
    # overflowed the socket's receive buffer, so large changes go out in several.
    with NetnsWorker(ns) as worker:
        oif = json.loads(ip(ns, "-j", "link", "show", "va"))[0]["ifindex"]
        writes = [
            RouteWrite(f"10.200.{i // 250}.{i % 250 + 1}", 10, "10.98.0.2", oif)
            for i in range(1000)
        ]
        codes = worker.call(lambda ipr: route_socket().write(writes, PROTO, TABLE))
    assert codes == [0] * 1000
    assert len(ours(ns)) == 1000
