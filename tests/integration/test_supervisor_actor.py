"""The Supervisor actor on a real local Ray: ingest by refs, restart keeps knowledge,
and the loop keeps ticking while blocking work runs elsewhere."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import ray

from benchmarks.supervisor_load import train_step
from tests.helpers import wait_for
from x0tta6bl4.actors.supervisor import spawn_supervisor
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import BackPressureError, TelemetryError
from x0tta6bl4.mapek.ingest import IngestAck
from x0tta6bl4.mesh.topology import ring
from x0tta6bl4.telemetry import TelemetryBatch

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _settings(tmp_path, **supervisor) -> Settings:
    return Settings(
        data_dir=tmp_path,
        supervisor={
            "interval_s": 0.2,
            "stale_after_s": 1.0,
            "warmup_windows": 2,
            "baseline_save_s": 2.0,
            **supervisor,
        },
    )


def _link_batch(topo, ts: float) -> TelemetryBatch:
    keys = np.asarray([link.key for link in topo.links])
    ones = np.ones(len(keys))
    return TelemetryBatch(
        "test", "link", np.full(len(keys), ts), keys, {"up": ones, "loss": np.zeros(len(keys))}
    )


def _node_batch(names, ts: float) -> TelemetryBatch:
    return TelemetryBatch(
        "test",
        "node",
        np.full(len(names), ts),
        np.asarray(names),
        {"links_up": np.full(len(names), 2.0)},
    )


def _kill_quietly(handle) -> None:
    ray.kill(handle, no_restart=True)


def test_ingest_restart_keeps_knowledge(ray_session, tmp_path) -> None:
    topo = ring(5)
    name = f"supervisor-test-{time.time_ns()}"
    sup = spawn_supervisor(
        _settings(tmp_path, max_queued_batches=4),
        namespace="x0tta6bl4-test",
        topology=topo,
        name=name,
    )
    try:
        first = ray.get(sup.status.remote())
        with pytest.raises(ray.exceptions.RayTaskError) as info:
            ray.get(sup.ingest.remote("not a list"))
        assert isinstance(info.value.as_instanceof_cause(), TelemetryError)

        # Telemetry for a while: n4 falls silent half-way -> an incident.
        for i in range(25):
            now = time.time()
            names = topo.names if i < 12 else topo.names[:-1]
            refs = [ray.put(_link_batch(topo, now)), ray.put(_node_batch(names, now))]
            ack = IngestAck.from_dict(ray.get(sup.ingest.remote(refs)))
            assert ack.accepted == 2
            time.sleep(0.1)
        flood = [ray.put(_link_batch(topo, time.time())) for _ in range(40)]
        ack = IngestAck.from_dict(ray.get(sup.ingest.remote(flood)))
        assert ack.dropped > 0 and ack.accepted + ack.dropped == 40
        with pytest.raises(BackPressureError):
            ack.raise_for_drops()

        def incident_recorded():
            status = ray.get(sup.status.remote())
            return status["knowledge"]["incidents"] >= 1 and status["knowledge"]["baselines"] > 0

        wait_for(incident_recorded, timeout_s=20, message="an incident and saved baselines")
        before = ray.get(sup.status.remote())
        assert before["ingest"]["samples"] > 0 and before["queue"]["dropped"] > 0

        ray.kill(sup, no_restart=False)  # a crash: Ray restarts the actor

        def restarted():
            try:
                status = ray.get(sup.ready.remote(), timeout=5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return None
            return status if status["pid"] != first["pid"] else None

        after = wait_for(
            restarted, timeout_s=90, interval_s=0.5, message="the restarted Supervisor"
        )
        assert after["ingest"]["samples"] == 0  # a fresh process...
        assert after["knowledge"]["incidents"] >= before["knowledge"]["incidents"]  # ...same memory
        assert after["knowledge"]["baselines"] >= before["knowledge"]["baselines"] > 0
    finally:
        _kill_quietly(sup)


@pytest.mark.parametrize(("design", "responsive"), [("offload", True), ("inline", False)])
def test_loop_keeps_ticking_while_training_runs(ray_session, tmp_path, design, responsive) -> None:
    name = f"supervisor-{design}-{time.time_ns()}"
    sup = spawn_supervisor(
        _settings(tmp_path), namespace="x0tta6bl4-test", topology=ring(4), name=name, design=design
    )
    try:
        ray.get(sup.reset_stats.remote())
        ticks_before = ray.get(sup.status.remote())["mapek"]["ticks"]
        job = sup.run_job.remote(train_step, 1200)  # a torch training loop, ~4 s of CPU
        time.sleep(2.0)  # the job runs meanwhile; then ask the Supervisor something
        probe = sup.status.remote()
        ready, _ = ray.wait([probe], timeout=3.0 if responsive else 2.0)
        if responsive:
            assert ready, "the Supervisor did not answer while the job ran"
            ticks = ray.get(probe)["mapek"]["ticks"] - ticks_before
            assert ticks >= 3, f"only {ticks} ticks in 2 s with interval 0.2 s"
        else:
            assert not ready, "with the job on the loop the Supervisor cannot answer"
        assert isinstance(ray.get(job, timeout=180), float)
        lag = ray.get(sup.status.remote())["loop_lag"]
        if responsive:
            assert lag["p99_ms"] < 1000, lag
        else:
            assert lag["max_ms"] >= 1000, lag  # the job held the loop for seconds
    finally:
        _kill_quietly(sup)


def test_offloaded_jobs_reuse_a_runner_process(ray_session, tmp_path) -> None:
    """What a job imported stays imported: the next job runs in the same process."""
    name = f"supervisor-jobs-{time.time_ns()}"
    sup = spawn_supervisor(
        _settings(tmp_path), namespace="x0tta6bl4-test", topology=ring(4), name=name
    )
    try:
        supervisor_pid = ray.get(sup.status.remote())["pid"]
        first, second = (ray.get(sup.run_job.remote(os.getpid), timeout=60) for _ in range(2))
        assert first == second != supervisor_pid
        # A failing job's error comes back to the caller; the runner keeps serving.
        with pytest.raises(ZeroDivisionError):
            ray.get(sup.run_job.remote(divmod, 1, 0), timeout=60)
        assert ray.get(sup.run_job.remote(os.getpid), timeout=60) == first
    finally:
        _kill_quietly(sup)
