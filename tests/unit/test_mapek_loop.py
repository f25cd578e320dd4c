"""The loop survives failing phases, warns when slow, and resumes after a restart.

The mesh is the real in-process simulator; time is its virtual clock.
"""

from __future__ import annotations

import logging

import pytest

from x0tta6bl4.config import MeshSettings, SupervisorSettings
from x0tta6bl4.mapek.assemble import build_loop
from x0tta6bl4.mapek.knowledge import AsyncKnowledge
from x0tta6bl4.mapek.ports import SimMeshPort
from x0tta6bl4.mapek.twin_port import LocalTwin
from x0tta6bl4.mesh.ports import Fault, FaultKind
from x0tta6bl4.mesh.sim import START_WALL, SimBackend
from x0tta6bl4.mesh.topology import ring_chords
from x0tta6bl4.twin import TwinService


async def inline(fn, *args):
    return fn(*args)


class Rig:
    """A converged 8-node simulated mesh under a MAPE-K loop; one tick per virtual second."""

    def __init__(self, tmp_path, mesh=None, **overrides) -> None:
        self.topology = ring_chords(8)
        mesh_settings = MeshSettings(**{"backend": "sim", "byzantine": False, **(mesh or {})})
        self.sim = SimBackend(mesh_settings, seed=3)
        self.sim.up(self.topology)
        assert self.sim.run_until(self.sim.converged, 30, 0.1) is not None
        self.port = SimMeshPort(self.sim)
        supervisor = {
            "stale_after_s": 3,
            "verify_after_s": 1,
            "heal_timeout_s": 8,
            "baseline_save_s": 10,
        }
        self.settings = SupervisorSettings(**{**supervisor, "warmup_windows": 4, **overrides})
        self.path = tmp_path / "kb.sqlite"

    def clock(self) -> float:
        return START_WALL + self.sim.clock.now()

    async def loop(self, analyzer=None):
        self.kb = AsyncKnowledge(self.path)
        await self.kb.open()
        loop = build_loop(
            self.topology,
            self.settings,
            clock=self.clock,
            port=self.port,
            knowledge=self.kb,
            twin=LocalTwin(TwinService(self.topology), inline),
            analyzer=analyzer,
        )
        await loop.start()
        return loop

    async def run(self, loop, ticks: int) -> list[dict]:
        out = []
        for _ in range(ticks):
            for _ in range(10):
                self.sim.run(0.1)
                for batch in self.port.telemetry():
                    loop.aggregator.add(batch)
            out.append(await loop.tick())
        return out


class ExplodingAnalyzer:
    async def analyze(self, report, flagged):
        raise RuntimeError("analysis blew up")


async def test_a_failing_phase_is_logged_and_the_loop_goes_on(tmp_path, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="x0tta6bl4.supervisor")
    rig = Rig(tmp_path)
    loop = await rig.loop(ExplodingAnalyzer())
    await rig.run(loop, 6)
    rig.sim.inject(Fault(FaultKind.LOSS, ("n0", "n1"), 100.0))
    summaries = await rig.run(loop, 3)
    assert loop.stats["analyze"].failures >= 1
    assert loop.stats["monitor"].runs == loop.stats["persist"].runs == 9
    assert summaries[-1]["phase_failures"]["analyze"] >= 1
    assert summaries[-1]["symptoms"] > 0  # Monitor kept working after Analyze failed
    assert "mapek_phase_failed" in caplog.text and "analysis blew up" in caplog.text
    await rig.kb.close()


async def test_slow_tick_is_a_warning(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="x0tta6bl4.supervisor")
    rig = Rig(tmp_path, slow_tick_s=1e-6)
    loop = await rig.loop()
    await rig.run(loop, 1)
    assert "mapek_loop_slow" in caplog.text
    await rig.kb.close()


async def test_restart_replays_a_planned_action_and_checks_it(tmp_path) -> None:
    rig = Rig(tmp_path)
    loop = await rig.loop()
    await rig.run(loop, 6)
    rig.sim.inject(Fault(FaultKind.NODE_CRASH, ("n5",)))
    # Run Monitor, Analyze and Plan only: the Supervisor dies before Execute.
    for _ in range(10):
        rig.sim.run(0.1)
        for batch in rig.port.telemetry():
            loop.aggregator.add(batch)
    for phase, step in (
        ("monitor", loop._monitor),
        ("analyze", loop._analyze),
        ("plan", loop._plan),
    ):
        await loop._run(phase, step)
    (pending,) = await rig.kb.call(lambda k: k.pending_actions())
    assert (pending.state, pending.action.key) == ("planned", "restart-node:n5")
    assert rig.port.applied == []
    await rig.kb.close()

    again = await rig.loop()  # the restarted Supervisor, same knowledge file
    await rig.run(again, 3)
    assert [a.key for a in rig.port.applied] == ["restart-node:n5"]
    (row,) = await rig.kb.call(lambda k: k.incidents())
    assert (row.state, row.action, row.success) == ("healed", "restart node n5", True)
    assert "n5" not in rig.sim.crashed
    await rig.kb.close()


@pytest.mark.parametrize("ticks", [12])
async def test_baselines_survive_a_restart(tmp_path, ticks) -> None:
    rig = Rig(tmp_path)
    loop = await rig.loop()
    await rig.run(loop, ticks)  # saves every 10 ticks
    saved = await rig.kb.call(lambda k: k.baselines())
    assert {r.entity for r in saved} >= {link.key for link in rig.topology.links}
    await rig.kb.close()
    again = await rig.loop()
    assert {(r.entity, r.metric) for r in again.monitor.baselines.records()} == {
        (r.entity, r.metric) for r in saved
    }
    await rig.kb.close()
