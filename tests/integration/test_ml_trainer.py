"""The Trainer actor on a real local Ray: trains on the CPU, registers, serves inference."""

from __future__ import annotations

import numpy as np
import pytest
import ray

from x0tta6bl4.actors.trainer import TRAINER_NAME, spawn_trainer, trainer_options
from x0tta6bl4.config import Settings
from x0tta6bl4.mesh.topology import generate
from x0tta6bl4.ml.scenarios import generate_case, save_case
from x0tta6bl4.ml.schema import FaultKind
from x0tta6bl4.sdk import Mesh

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        ml={
            "quick_cases": 60,
            "quick_epochs": 3,
            "eval_cases": 10,
            "trainer_num_cpus": 0,
            "device": "auto",
        },
    )


def test_options_ask_for_a_gpu_only_where_there_is_one(tmp_path):
    settings = _settings(tmp_path)
    assert trainer_options(settings, {"CPU": 8})["num_gpus"] == 0
    assert trainer_options(settings, {"CPU": 8, "GPU": 1})["num_gpus"] == 1
    settings.ml.device = "cpu"
    assert trainer_options(settings, {"CPU": 8, "GPU": 1})["num_gpus"] == 0


def test_trainer_trains_and_serves_on_cpu(ray_session, tmp_path):
    settings = _settings(tmp_path)
    trainer = spawn_trainer(settings, ray_session.namespace)
    try:
        before = ray.get(trainer.status.remote(), timeout=30)
        assert before["model_version"] == "default" and before["device"] == "cpu"
        record = ray.get(trainer.train.remote(quick=True), timeout=300)
        assert record["version"] == "v0001"
        assert "heldout.ac1" in record["metrics"] and len(record["data_hash"]) == 16
        assert (tmp_path / "ml" / "models" / "v0001" / "model.pt").is_file()

        case = generate_case(generate("grid", 9), FaultKind.NODE_CRASH, np.random.default_rng(2))
        save_case(case, tmp_path / "case")
        edges = [link.ends for link in case.topology.links]
        result = ray.get(
            trainer.infer.remote(case.frame(), edges, case.label.start_s, 2), timeout=60
        )
        assert result["model_version"] == "v0001"
        assert len(result["root_causes"]) == 2
        assert all(
            c["explanation"]["text"].startswith(f"{c['entity_type']} {c['entity']}:")
            for c in result["root_causes"]
        )
        ranked = ray.get(trainer.rank.remote(case.frame(), edges, case.label.start_s), timeout=60)
        assert len(ranked) == len(case.topology.names) + len(case.topology.links)
        from_dir = ray.get(trainer.infer_case.remote(str(tmp_path / "case"), 1), timeout=60)
        assert from_dir["root_causes"][0]["entity"] == result["root_causes"][0]["entity"]
        assert ray.get_actor(TRAINER_NAME, namespace=ray_session.namespace) is not None
        via_sdk = Mesh(settings, ray_session).rca(case.frame(), edges, case.label.start_s, top=1)
        assert via_sdk["model_version"] == "v0001"
        assert via_sdk["root_causes"][0]["entity"] == result["root_causes"][0]["entity"]
    finally:
        ray.kill(trainer)
