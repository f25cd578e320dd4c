"""Knowledge in a real SQLite file: migrations, incidents, actions, outcomes, baselines."""

from __future__ import annotations

import sqlite3

import pytest

from x0tta6bl4.errors import ConfigError, TelemetryError
from x0tta6bl4.mapek._schema import MIGRATIONS
from x0tta6bl4.mapek._types import (
    Action,
    ActionKind,
    Candidate,
    Diagnosis,
    DiagnosisKind,
    Outcome,
    Symptom,
)
from x0tta6bl4.mapek.baselines import BaselineRecord
from x0tta6bl4.mapek.knowledge import AsyncKnowledge, Knowledge

SYMPTOM = Symptom(10.0, "link", "a-b", "loss", 0.4, 0.0, 0.01, 40.0)
DIAG = Diagnosis(DiagnosisKind.LINK_DEGRADED, "a-b", 0.9, "a-b loses 40%", (SYMPTOM,))


def _candidate(kind=ActionKind.RAISE_COST, target="a-b", factor=10.0):
    return Candidate(Action(kind, target, factor), 0.2, 0.3, 0.1, 0.5, {"changed_pairs": 3})


def test_schema_is_versioned_in_wal_mode(tmp_path) -> None:
    kb = Knowledge(tmp_path / "kb.sqlite")
    assert kb.version == len(MIGRATIONS)
    assert kb.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    kb.close()
    again = Knowledge(tmp_path / "kb.sqlite")  # opening twice migrates nothing
    assert again.version == len(MIGRATIONS)


def test_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "kb.sqlite"
    sqlite3.connect(path).execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(ConfigError, match="newer than this release") as info:
        Knowledge(path)
    assert "db_path" in info.value.fix


def test_unwritable_location_is_a_config_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot open the knowledge base"):
        Knowledge(blocker / "kb.sqlite")


def test_incident_lifecycle_survives_reopening(tmp_path) -> None:
    kb = Knowledge(tmp_path / "kb.sqlite")
    opened = kb.open_incident(DIAG, 100.0)
    assert opened.created and opened.state == "open"
    assert kb.open_incident(DIAG, 101.0).id == opened.id  # same root cause, same incident
    worse = Diagnosis(DiagnosisKind.LINK_DOWN, "a-b", 1.0, "a-b is down", (SYMPTOM,))
    changed = kb.open_incident(worse, 102.0)
    assert (changed.id, changed.created, changed.previous_kind) == (
        opened.id,
        False,
        "link-degraded",
    )
    action = kb.plan_action(opened.id, "link-down", _candidate(), 103.0)
    assert kb.plan_action(opened.id, "link-down", _candidate(), 104.0) == action  # idempotent
    assert kb.tried(opened.id) == {"raise-cost:a-bx10"}
    assert [p.action.key for p in kb.pending_actions()] == ["raise-cost:a-bx10"]
    kb.mark_executed(action, 105.0)
    kb.close()

    kb = Knowledge(tmp_path / "kb.sqlite")
    (pending,) = kb.pending_actions()
    assert (pending.state, pending.root_cause, pending.prediction) == (
        "executed",
        "a-b",
        {"changed_pairs": 3},
    )
    kb.record_outcome(action, Outcome(True, "routes avoid a-b", 107.0, {"pairs": 12}))
    kb.record_outcome(action, Outcome(False, "second check ignored", 108.0))
    kb.close_incident(opened.id, "healed", 107.0)
    kb.close_incident(opened.id, "cleared", 109.0)  # the first close wins
    (row,) = kb.incidents()
    assert (row.state, row.kind, row.action, row.success) == (
        "healed",
        "link-down",
        "raise cost of a-b x10",
        True,
    )
    assert row.time_to_heal_s == pytest.approx(7.0)
    assert row.symptom.startswith("a-b loss=0.4")
    detail, symptoms, actions = kb.incident(opened.id)
    assert detail.explanation == "a-b is down"
    assert len(symptoms) == 3 and actions[0]["detail"] == "routes avoid a-b"
    assert kb.pending_actions() == []
    assert kb.in_effect() == [(Action(ActionKind.RAISE_COST, "a-b", 10.0), True)]
    with pytest.raises(TelemetryError, match="no incident 99"):
        kb.incident(99)


def test_effectiveness_is_laplace_smoothed_per_action_and_diagnosis(tmp_path) -> None:
    kb = Knowledge(tmp_path / "kb.sqlite")
    for i, ok in enumerate([True, True, False]):
        incident = kb.open_incident(
            Diagnosis(DiagnosisKind.NODE_DOWN, f"n{i}", 0.9, "silent"), float(i)
        ).id
        action = kb.plan_action(
            incident, "node-down", _candidate(ActionKind.RESTART_NODE, f"n{i}", 1.0), 1.0
        )
        kb.record_outcome(action, Outcome(ok, "", 2.0))
        kb.close_incident(incident, "healed", 2.0)
    assert kb.effectiveness() == {("restart-node", "node-down"): pytest.approx(3 / 5)}


def test_escalated_incident_stays_open(tmp_path) -> None:
    kb = Knowledge(tmp_path / "kb.sqlite")
    incident = kb.open_incident(DIAG, 1.0).id
    kb.escalate(incident)
    again = kb.open_incident(DIAG, 2.0)
    assert (again.id, again.state) == (incident, "escalated")
    assert kb.counts()["open_incidents"] == 1


def test_baselines_upsert(tmp_path) -> None:
    kb = Knowledge(tmp_path / "kb.sqlite")
    kb.save_baselines([BaselineRecord("link", "a-b", "loss", 0.01, 0.002, 5)], 1.0)
    kb.save_baselines([BaselineRecord("link", "a-b", "loss", 0.02, 0.003, 9)], 2.0)
    assert kb.baselines() == [BaselineRecord("link", "a-b", "loss", 0.02, 0.003, 9)]


async def test_async_knowledge_runs_off_the_loop(tmp_path) -> None:
    import threading

    kb = AsyncKnowledge(tmp_path / "kb.sqlite")
    await kb.open()
    where = await kb.call(lambda k: threading.current_thread().name)
    assert where.startswith("x0-knowledge") and where != threading.current_thread().name
    opened = await kb.call(lambda k: k.open_incident(DIAG, 1.0))
    assert (await kb.call(lambda k: k.incidents()))[0].id == opened.id
    await kb.close()
    with pytest.raises(ConfigError, match="not open"):
        await kb.call(lambda k: k.counts())
