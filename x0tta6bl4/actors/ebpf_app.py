"""The ``ebpf`` component of the app: one :class:`EbpfAgent` per alive Ray node.

Enabled by ``ebpf.enabled``.  Where no node can load programs (no root, no
bcc, no kernel headers) ``start`` raises that error with its fix, the app
marks the component failed and runs on without it; ``x0tta6bl4 doctor`` shows
the same reasons.  On a cluster where only some nodes can, the others are
listed in ``status()["errors"]``.
"""

from __future__ import annotations

from typing import Any, cast

import ray
from ray.actor import ActorHandle

from x0tta6bl4 import loggers
from x0tta6bl4.actors.ebpf_agent import agent_name, raise_reported, spawn_agent
from x0tta6bl4.actors.runtime import RayInfo
from x0tta6bl4.config import Settings
from x0tta6bl4.ebpf.agent import AgentConfig
from x0tta6bl4.errors import ClusterError, X0Error
from x0tta6bl4.telemetry import TelemetryBatch, unpack

__all__ = ["EbpfComponent", "EbpfView"]

log = loggers.ebpf

_STOP_TIMEOUT_S = 30.0


class EbpfComponent:
    """Starts, reports and stops the eBPF agents of every node."""

    name = "ebpf"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.agents: dict[str, ActorHandle[Any]] = {}
        self.errors: dict[str, str] = {}

    def start(self, ray_info: RayInfo) -> None:
        config = AgentConfig.from_settings(self.settings.ebpf)
        failures: list[X0Error] = []
        for node_id in _alive_nodes():
            try:
                self.agents[node_id] = self._start_node(node_id, config, ray_info.namespace)
            except X0Error as exc:
                failures.append(exc)
                self.errors[node_id] = str(exc)
                log.error("ebpf_agent_failed", node=node_id, error=str(exc))
        if not self.agents:
            raise failures[0] if failures else ClusterError("no alive Ray node to run on")

    def _start_node(self, node_id: str, config: AgentConfig, namespace: str) -> ActorHandle[Any]:
        ebpf = self.settings.ebpf
        agent = spawn_agent(
            node_id,
            config,
            interval_s=ebpf.interval_s,
            rescan_interval_s=ebpf.rescan_interval_s,
            consumer=ebpf.consumer or None,
            ray_namespace=namespace,
            max_inflight=ebpf.max_inflight_batches,
            start_timeout_s=ebpf.start_timeout_s,
        )
        try:
            report = cast(
                dict[str, Any], ray.get(agent.start.remote(), timeout=ebpf.start_timeout_s)
            )
        except ray.exceptions.RayError as exc:
            ray.kill(agent)
            raise ClusterError(
                f"EbpfAgent on node {node_id} failed while starting: {exc}",
                fix="see the agent's log in the Ray dashboard",
                node=node_id,
            ) from exc
        if "error" in report:
            ray.kill(agent)
            raise_reported(report)
        return agent

    def status(self) -> dict[str, Any]:
        attached = 0
        faults = dict(self.errors)
        for node_id, agent in self.agents.items():
            try:
                report = cast(dict[str, Any], ray.get(agent.status.remote(), timeout=10))
            except (ray.exceptions.RayError, TimeoutError) as exc:
                faults[node_id] = f"unreachable: {exc}"
                continue
            attached += len(report["attached"])
            for target, error in report["errors"].items():
                faults[f"{node_id[:8]}:{target}"] = error
        return {"agents": len(self.agents), "attached": attached, "errors": len(faults)}

    def handles(self) -> dict[str, ActorHandle[Any]]:
        return dict(self.agents)

    def stop(self) -> None:
        """Detach everything on every node and end the agents; idempotent."""
        while self.agents:
            node_id, agent = self.agents.popitem()
            try:
                ray.get(agent.stop.remote(), timeout=_STOP_TIMEOUT_S)
            except ray.exceptions.RayError as exc:
                log.error("ebpf_agent_stop_failed", node=node_id, error=str(exc))
            finally:
                ray.kill(agent)


def _alive_nodes() -> list[str]:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return [str(n["NodeID"]) for n in nodes if n.get("Alive")]


class EbpfView:
    """The running eBPF agents of a deployment, for scripts (``mesh.ebpf``).

    Agents are found by their names (one per alive node), so this needs no
    dashboard or state API.
    """

    def __init__(self, namespace: str, timeout_s: float = 10.0) -> None:
        self.namespace = namespace
        self.timeout_s = timeout_s

    def agents(self) -> dict[str, ActorHandle[Any]]:
        """Node id -> agent handle, for every alive node that runs one."""
        found = {}
        for node_id in _alive_nodes():
            try:
                found[node_id] = ray.get_actor(agent_name(node_id), namespace=self.namespace)
            except ValueError:
                continue
        return found

    def status(self) -> dict[str, dict[str, Any]]:
        """Each agent's status: attachments with their XDP modes, errors, ticks, deliveries."""
        agents = self.agents()
        reports: list[dict[str, Any]] = ray.get(
            [a.status.remote() for a in agents.values()], timeout=self.timeout_s
        )
        return dict(zip(agents, reports, strict=True))

    def latest(self) -> list[TelemetryBatch]:
        """The most recent batches of every agent, fetched from the object store."""
        agents = list(self.agents().values())
        ref_lists: list[list[ray.ObjectRef[TelemetryBatch]]] = ray.get(
            [a.latest.remote() for a in agents], timeout=self.timeout_s
        )
        refs = [ref for refs in ref_lists for ref in refs]
        return [b for obj in ray.get(refs, timeout=self.timeout_s) for b in unpack(obj)]
