"""The Supervisor's Analyze asks the live Trainer actor: its model (the small GraphSAGE
model shipped with the package, trained on twin cases) ranks the root cause from the
mesh's own telemetry, and the incident records the model's answer.

The mesh is the real in-process simulator under the MAPE-K loop (as in the loop's unit
tests); analysis goes through :class:`TrainerAnalyzer` to the ``trainer`` actor on Ray.
"""

from __future__ import annotations

from typing import Any

import pytest
import ray

from tests.unit.test_mapek_loop import Rig
from x0tta6bl4.actors.trainer import spawn_trainer
from x0tta6bl4.config import Settings
from x0tta6bl4.mapek import StatisticalAnalyzer, TrainerAnalyzer
from x0tta6bl4.mesh.ports import Fault, FaultKind

pytestmark = [pytest.mark.ray, pytest.mark.slow]


async def test_analyze_records_the_live_trainers_root_cause(ray_session, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, ml={"trainer_num_cpus": 0})
    trainer = spawn_trainer(settings, ray_session.namespace)
    answers: list[dict[str, Any]] = []
    try:
        version = (await trainer.status.remote())["model_version"]

        async def infer(frame, edges, start):
            answer: dict[str, Any] = await trainer.infer.remote(frame, edges, start)
            answers.append(answer)
            return answer

        rig = Rig(tmp_path, verify_after_s=4)  # the incident stays open a few ticks
        loop = None
        statistical = StatisticalAnalyzer(rig.topology, rig.settings.z_threshold)
        analyzer = TrainerAnalyzer(infer, lambda: loop.monitor.frame(), statistical)
        loop = await rig.loop(analyzer)
        await rig.run(loop, 10)  # baselines learn the healthy mesh; history fills up
        assert not answers  # no symptoms, no call
        rig.sim.inject(Fault(FaultKind.LOSS, ("n1", "n2"), 20.0))
        await rig.run(loop, 6)
        rows = await rig.kb.call(lambda k: k.incidents())
        await rig.kb.close()
    finally:
        ray.kill(trainer)
    assert answers, "the Trainer was never asked"
    learned = [r for r in rows if r.source == f"trainer:{version}"]
    assert learned, (
        [(r.kind, r.root_cause, r.source) for r in rows],
        [
            [(c["entity"], c["kind"], round(c["score"], 3)) for c in a["root_causes"]]
            for a in answers
        ],
    )
    row = learned[0]
    # The incident holds the model's top answer for one of the frames it was sent ...
    tops = {
        (str(c["entity"]), c["explanation"]["text"])
        for a in answers
        for c in a["root_causes"][:1]
        if c["score"] >= analyzer.min_score
    }
    assert (row.root_cause, row.explanation) in tops
    # ... which blames the faulty link or one of its ends.
    assert row.root_cause in {"n1-n2", "n1", "n2"}, (row.root_cause, row.explanation)
