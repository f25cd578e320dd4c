"""The EbpfAgent actor on a real local Ray: pinned to its node, batches reach a consumer
actor through the object store, the component starts and stops cleanly, and an agent
for a node that does not exist fails with a clear error instead of pending forever."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from tests.helpers import wait_for
from tests.integration.ebpf_net import VethPair, nft_drop, sh, udp_blast, veth_pair
from x0tta6bl4.actors.ebpf_agent import agent_name, spawn_agent
from x0tta6bl4.actors.ebpf_app import EbpfComponent, EbpfView
from x0tta6bl4.config import load_settings
from x0tta6bl4.ebpf import AgentConfig
from x0tta6bl4.errors import ClusterError
from x0tta6bl4.telemetry import TelemetryBatch, unpack

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.ray]


@ray.remote(num_cpus=0)
class Sink:
    """Stands in for the Supervisor: takes refs, dereferences them from the object store."""

    def __init__(self) -> None:
        self.calls = 0
        self.ref_types: set[str] = set()
        self.batches: list[Any] = []

    async def ingest(self, refs: list[ray.ObjectRef]) -> dict[str, int]:
        self.calls += 1
        first = self.calls == 1  # before the await: calls overlap
        self.ref_types.update(type(r).__name__ for r in refs)
        for obj in await asyncio.gather(*refs):
            self.batches.extend(unpack(obj))
        # Like the Supervisor's ack when its queue is full: the first call reports one drop.
        return {"dropped": 1 if first else 0}

    def view(self) -> dict[str, Any]:
        latest: dict[str, dict[str, float]] = {}
        for batch in self.batches:
            for i, entity in enumerate(batch.entity):
                latest[f"{batch.kind}:{entity}"] = {
                    k: float(v[i]) for k, v in batch.metrics.items()
                }
        return {"calls": self.calls, "ref_types": sorted(self.ref_types), "latest": latest}


@pytest.fixture
def pair() -> Iterator[VethPair]:
    with veth_pair() as p:
        yield p


def test_batches_reach_a_consumer_actor_through_the_object_store(
    ray_session: Any, pair: VethPair, tmp_path: Path
) -> None:
    sink_name = f"x0ebpf-sink-{os.getpid()}"
    sink = Sink.options(name=sink_name, namespace=ray_session.namespace).remote()
    settings = load_settings(
        overrides={
            "ebpf": {
                "interval_s": 0.2,
                "programs": ["xdp", "tc", "trace"],
                "rescan_interval_s": 0.5,
                "netns_patterns": [pair.ns_a.rsplit("-", 1)[0] + "-*"],
                "consumer": sink_name,
                "state_dir": str(tmp_path / "state"),
            }
        }
    )
    component = EbpfComponent(settings)
    component.start(ray_session)
    try:
        node_id = ray.get_runtime_context().get_node_id()
        (agent,) = component.handles().values()
        assert ray.get(agent.ready.remote()) == node_id, "pinned to the node it serves"
        wait_for(lambda: component.status()["attached"] == 4, 30, message="4 attachments")

        udp_blast(pair.ns_a, pair.ip_b, 9, 500, size=100)
        nft_drop(pair, "udp dport 7777")
        udp_blast(pair.ns_a, pair.ip_b, 7777, 40, size=100)
        b = f"{pair.ns_b}/{pair.if_b}"

        def arrived() -> bool:
            view = ray.get(sink.view.remote())
            iface = view["latest"].get(f"iface:{b}", {})
            drop = view["latest"].get(f"drop:{b}/NETFILTER_DROP", {})
            return iface.get("xdp_packets", 0) >= 540 and drop.get("drops", 0) == 40

        wait_for(arrived, 30, message="the iface and drop batches of the traffic")
        view = ray.get(sink.view.remote())
        assert view["ref_types"] == ["ObjectRef"], "the consumer is handed refs, not values"
        udp = view["latest"][f"iface_proto:{b}/xdp/ipv4/udp"]
        assert udp["packets"] >= 540
        sdk_view = EbpfView(ray_session.namespace)  # what `mesh.ebpf` returns
        status = sdk_view.status()[node_id]
        assert status["batches_delivered"] > 0 and status["tracepoints"]
        assert status["batches_dropped"] == 1, "the drop the consumer acked is counted"
        modes = {a["mode"] for a in status["attached"]}
        assert modes == {"skb", "clsact"}, "auto on a veth: generic XDP"
        latest = sdk_view.latest()
        assert all(isinstance(b, TelemetryBatch) for b in latest)
        assert "iface" in {b.kind for b in latest}
    finally:
        component.stop()
        component.stop()
    for ns in (pair.ns_a, pair.ns_b):
        net = json.loads(sh("bpftool", "-j", "net", "show", ns=ns))[0]
        assert net["xdp"] == [] and net["tc"] == []
    assert not list((tmp_path / "state").glob("*.json"))
    with pytest.raises(ValueError):
        ray.get_actor(agent_name(node_id), namespace=ray_session.namespace)


@pytest.mark.slow
def test_batches_reach_the_supervisor(ray_session: Any, pair: VethPair, tmp_path: Path) -> None:
    from x0tta6bl4.actors.supervisor import spawn_supervisor

    name = f"x0ebpf-supervisor-{os.getpid()}"
    settings = load_settings(
        overrides={
            "data_dir": str(tmp_path / "data"),
            "ebpf": {
                "interval_s": 0.2,
                "netns_patterns": [pair.ns_a.rsplit("-", 1)[0] + "-*"],
                "consumer": name,
                "state_dir": str(tmp_path / "state"),
            },
        }
    )
    supervisor = spawn_supervisor(settings, namespace=ray_session.namespace, name=name)
    component = EbpfComponent(settings)
    try:
        component.start(ray_session)
        udp_blast(pair.ns_a, pair.ip_b, 9, 100)

        def ingested() -> dict[str, Any] | None:
            status = ray.get(supervisor.status.remote())
            return status if status["ingest"]["batches"] >= 5 else None

        status = wait_for(ingested, 60, message="the Supervisor to read eBPF batches")
        assert isinstance(status, dict)
        assert status["ingest"]["bad_batches"] == 0
        assert status["ingest"]["samples"] > 0
    finally:
        component.stop()
        with contextlib.suppress(ray.exceptions.RayError):
            ray.get(supervisor.stop.remote(), timeout=30)
        ray.kill(supervisor)


def test_agent_for_a_missing_node_fails_clearly_not_pending(ray_session: Any) -> None:
    missing = "ab" * 28
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"EbpfAgent for node {missing}") as failed:
        _spawn(missing, ray_session.namespace, 3.0)
    assert time.monotonic() - started < 20
    assert "node may be gone" in failed.value.fix
    wait_for(lambda: _gone(agent_name(missing), ray_session.namespace), 10, message="actor killed")


def test_agent_that_does_not_start_in_time_is_killed_with_a_timeout_error(
    ray_session: Any,
) -> None:
    node_id = ray.get_runtime_context().get_node_id()
    with pytest.raises(ClusterError, match=r"did not start within 0\.001 s"):
        _spawn(node_id, ray_session.namespace, 0.001)
    wait_for(lambda: _gone(agent_name(node_id), ray_session.namespace), 10, message="killed")


def _spawn(node_id: str, namespace: str, timeout_s: float) -> Any:
    return spawn_agent(
        node_id,
        AgentConfig(),
        interval_s=1.0,
        rescan_interval_s=5.0,
        consumer=None,
        ray_namespace=namespace,
        max_inflight=4,
        start_timeout_s=timeout_s,
    )


def _gone(name: str, namespace: str) -> bool:
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return True
    return False
