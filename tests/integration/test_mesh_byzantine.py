"""A real malicious process in the mesh is ignored: routes do not follow it (root).

Five honest nodes in a ring run the real node service (UDP, netlink, kernel
routes) on an event loop of their own; a sixth namespace ``m``, linked to n0
and n1, runs ``_mesh_attacker.py`` as a separate process.  It holds a valid
key, keeps its real links up, advertises zero-cost links to n2, n3 and n4,
forges LSAs in n4's name, replays old hellos and LSAs and sends stale ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from x0tta6bl4.config import MeshSettings
from x0tta6bl4.mesh.echo import reachability
from x0tta6bl4.mesh.netns import NetnsBackend
from x0tta6bl4.mesh.nsutil import kill_pids
from x0tta6bl4.mesh.security import keys_dir, provision
from x0tta6bl4.mesh.service import NodeService, node_specs
from x0tta6bl4.mesh.topology import Link, Topology, ring

pytestmark = [pytest.mark.root, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
HONEST = [f"n{i}" for i in range(5)]


class ServiceHost:
    """Runs node services on an event loop in a thread of its own (real time for it only)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout_s: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def call(self, fn: Any) -> Any:
        async def wrapped() -> Any:
            return fn()

        return self.run(wrapped())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def attacked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("byz")
    base = ring(5)
    topo = Topology(
        [*base.nodes, type(base.nodes[0])("m")], [*base.links, Link("m", "n0"), Link("m", "n1")]
    )
    backend = NetnsBackend(data_dir, run_id=f"z{os.getpid() % 100000}")
    backend.up(topo)
    provision(keys_dir(data_dir), topo.names)
    mesh = MeshSettings()
    specs = node_specs(topo, backend._require_plan())
    host = ServiceHost()
    services = {n: NodeService(specs[n], mesh, data_dir) for n in HONEST}
    attacker = None
    try:
        for service in services.values():
            host.run(service.start())
        log = (data_dir / "attacker.log").open("wb")
        attacker = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                backend.namespace("m"),
                sys.executable,
                "-m",
                "tests.integration._mesh_attacker",
                str(data_dir),
                backend.run_id,
                "m",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        yield {
            "backend": backend,
            "services": services,
            "host": host,
            "attacker": attacker,
            "log": data_dir / "attacker.log",
        }
    finally:
        if attacker is not None:
            kill_pids([attacker.pid])
            log.close()
        try:
            for service in services.values():
                host.run(service.stop(flush_routes=True))
            host.close()
        finally:
            backend.down()


def routes_of(attacked: dict[str, Any], node: str) -> dict[str, str]:
    service = attacked["services"][node]
    return attacked["host"].call(lambda: {d: r.next_hop for d, r in service.installed().items()})


def counters_of(attacked: dict[str, Any], node: str) -> dict[str, int]:
    service = attacked["services"][node]
    return attacked["host"].call(lambda: service.snapshot().counters)


def test_honest_nodes_converge_around_the_attacker(attacked: dict[str, Any]) -> None:
    plan = attacked["backend"]._require_plan()
    honest_ns = {n: plan.namespaces[n] for n in HONEST}

    def all_honest_pairs() -> bool:
        pairs = reachability(honest_ns, plan.loopbacks, timeout_s=0.3)
        return len(pairs) == len(HONEST) * (len(HONEST) - 1)

    wait_for(all_honest_pairs, 20, 0.2, "honest pairs reachable")
    assert attacked["attacker"].poll() is None, attacked["log"].read_text()
    # Real-time scheduling stays with the services' own threads, never the test's.
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_routes_never_follow_the_fake_links(attacked: dict[str, Any]) -> None:
    # Give the lies time: the attacker's zero-cost claims would win every SPF if believed.
    wait_for(
        lambda: counters_of(attacked, "n0")["rejected_replayed"] > 0,
        20,
        0.2,
        "the attacker's replays arrived",
    )
    for _ in range(10):
        for node in HONEST:
            routes = routes_of(attacked, node)
            via_m = {d: h for d, h in routes.items() if h == "m" and d != "m"}
            assert via_m == {}, f"{node} routes through the attacker: {via_m}"
        wait_for(lambda: True, 0.3)
    # m claims 0.001-cost links to n2, n3 and n4; believed, they would pull n0's and n1's
    # traffic for those through m.  Every honest destination is routed, never via m.
    for node in ("n0", "n1"):
        routes = routes_of(attacked, node)
        assert set(routes) >= {n for n in HONEST if n != node}
        assert "m" not in {routes[n] for n in HONEST if n != node}


def test_forged_replayed_and_stale_datagrams_are_counted(attacked: dict[str, Any]) -> None:
    assert attacked["attacker"].poll() is None, attacked["log"].read_text()
    for node in ("n0", "n1"):
        for reason in ("forged", "replayed"):
            wait_for(
                lambda n=node, r=reason: counters_of(attacked, n)[f"rejected_{r}"] > 0,
                20,
                0.1,
                f"{node} counts {reason} datagrams: {json.dumps(counters_of(attacked, node))}",
            )
    service = attacked["services"]["n0"]

    def view() -> str:
        logic = service.logic
        m = logic.lsdb.get("m")
        links = {n: mon.state.value for n, mon in logic.monitors.items()}
        return f"links {links}, m's LSA {m.links if m else None}, counters {logic.counters}"

    wait_for(
        lambda: "m" in attacked["host"].call(lambda: service.snapshot().flagged),
        10,
        0.1,
        f"n0 flags the attacker for its unconfirmed links ({attacked['host'].call(view)})",
    )
    # Nodes the attacker never touched saw none of its traffic directly, and are not fooled.
    assert counters_of(attacked, "n3")["rejected_forged"] == 0
