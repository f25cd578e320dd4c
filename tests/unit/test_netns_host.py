"""The host backend's topology file and node specs (pure; nothing touches the host)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from x0tta6bl4.errors import MeshError, TopologyError
from x0tta6bl4.mesh.host import HostBackend
from x0tta6bl4.mesh.ports import Fault, FaultKind

FILE = {
    "version": 1,
    "nodes": [
        {"name": "a", "ray_ip": "192.0.2.10", "loopback": "10.255.0.1"},
        {"name": "b", "ray_ip": "192.0.2.11", "loopback": "10.255.0.2"},
        {"name": "c", "ray_ip": "192.0.2.12", "loopback": "10.255.0.3"},
    ],
    "links": [
        {
            "a": "a",
            "b": "b",
            "cost": 2.0,
            "a_ifname": "eth1",
            "a_address": "10.128.0.0",
            "b_ifname": "eth2",
            "b_address": "10.128.0.1",
        },
        {
            "a": "b",
            "b": "c",
            "a_ifname": "eth3",
            "a_address": "10.128.0.2",
            "b_ifname": "eth1",
            "b_address": "10.128.0.3",
        },
    ],
}


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(data))
    return path


def test_specs_follow_the_file_and_guard_foreign_routes(tmp_path: Path) -> None:
    host = HostBackend.load(write(tmp_path, FILE))
    host.up(host.topology, ray_nodes={"192.0.2.10": "A", "192.0.2.11": "B", "192.0.2.12": "C"})
    specs = host.specs()
    b = specs["b"]
    assert b.netns is None and b.guard_foreign and b.ray_node_id == "B"
    assert b.links["a"].ifname == "eth2" and b.links["a"].address == "10.128.0.1"
    assert b.links["a"].peer_address == "10.128.0.0"
    assert b.links["c"].ifname == "eth3" and b.costs == {"a": 2.0, "c": 1.0}
    assert b.destinations == {"a": "10.255.0.1", "b": "10.255.0.2", "c": "10.255.0.3"}
    assert sorted(specs["a"].links) == ["b"]


def test_nodes_without_a_ray_node_are_named(tmp_path: Path) -> None:
    host = HostBackend.load(write(tmp_path, FILE))
    with pytest.raises(MeshError, match="b, c have no alive Ray node") as info:
        host.up(host.topology, ray_nodes={"192.0.2.10": "A"})
    assert "ray up" in info.value.fix


def test_malformed_file_says_so(tmp_path: Path) -> None:
    broken = {**FILE, "links": [{"a": "a", "b": "b"}]}
    with pytest.raises(TopologyError, match="malformed") as info:
        HostBackend.load(write(tmp_path, broken))
    assert "docs/mesh.md" in info.value.fix
    with pytest.raises(TopologyError, match="cannot read"):
        HostBackend.load(tmp_path / "missing.json")


def test_faults_are_refused_on_real_networks(tmp_path: Path) -> None:
    host = HostBackend.load(write(tmp_path, FILE))
    with pytest.raises(MeshError, match="not injected into a real network"):
        host.inject(Fault(FaultKind.LINK_DOWN, ("a", "b")))
