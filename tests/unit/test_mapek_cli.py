"""Operator views: `incidents`, `incidents show`, `status` and `twin what-if`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from x0tta6bl4.cli import app
from x0tta6bl4.config import Settings
from x0tta6bl4.errors import TopologyError
from x0tta6bl4.mapek._types import (
    Action,
    ActionKind,
    Candidate,
    Diagnosis,
    DiagnosisKind,
    Outcome,
    Symptom,
)
from x0tta6bl4.mapek.assemble import knowledge_path
from x0tta6bl4.mapek.knowledge import Knowledge
from x0tta6bl4.mesh.topology import ring

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("X0_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def _record_incident(data_dir) -> None:
    kb = Knowledge(knowledge_path(Settings(data_dir=data_dir)))
    symptom = Symptom(1000.0, "link", "n1-n2", "loss", 0.4, 0.0, 0.01, 40.0)
    diagnosis = Diagnosis(
        DiagnosisKind.LINK_DEGRADED,
        "n1-n2",
        0.92,
        "n1-n2 loses 40% of probes",
        (symptom,),
        source="trainer:v3",
    )
    incident = kb.open_incident(diagnosis, 1000.0).id
    candidate = Candidate(
        Action(ActionKind.RAISE_COST, "n1-n2", 10.0),
        0.21,
        0.3,
        0.1,
        0.5,
        {"lost_pairs": 0, "changed_pairs": 4, "partitions_created": 0},
    )
    action = kb.plan_action(incident, "link-degraded", candidate, 1000.5)
    kb.mark_executed(action, 1001.0)
    kb.record_outcome(action, Outcome(True, "routes avoid n1-n2", 1003.5))
    kb.close_incident(incident, "healed", 1003.5)
    kb.close()


def test_without_a_knowledge_base_the_views_say_so(data_dir) -> None:
    result = runner.invoke(app, ["incidents"])
    assert result.exit_code == 0, result.output
    assert "no knowledge base" in result.output
    assert not knowledge_path(Settings(data_dir=data_dir)).exists()  # nothing created by looking


def test_incidents_table_detail_and_status(data_dir) -> None:
    _record_incident(data_dir)
    listing = runner.invoke(app, ["incidents"])
    assert listing.exit_code == 0, listing.output
    for text in ("n1-n2 loss=0.4", "link-degraded", "raise cost of n1-n2 x10", "worked", "3.5 s"):
        assert text in listing.output, text
    detail = runner.invoke(app, ["incidents", "show", "1"])
    assert detail.exit_code == 0, detail.output
    assert "n1-n2 loses 40% of probes" in detail.output and "trainer:v3" in detail.output
    assert "routes avoid n1-n2" in detail.output
    as_json = json.loads(runner.invoke(app, ["incidents", "show", "1", "--json"]).output)
    assert as_json["incident"]["explanation"] == "n1-n2 loses 40% of probes"
    assert as_json["actions"][0]["prediction"]["changed_pairs"] == 4
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0, status.output
    assert "healthy" in status.output and "1 healed, median 3.5 s" in status.output


def test_twin_what_if_on_a_topology_file(data_dir) -> None:
    path = data_dir / "ring.json"
    ring(6).save(path)
    shown = runner.invoke(app, ["twin", "what-if", "--topology", str(path), "--fail-link", "n0-n1"])
    assert shown.exit_code == 0, shown.output
    assert "pairs losing reachability" in shown.output and "n0-n1" in shown.output
    answer = json.loads(
        runner.invoke(
            app,
            [
                "twin",
                "what-if",
                "--topology",
                str(path),
                "--fail-link",
                "n0-n1",
                "--fail-link",
                "n3-n4",
                "--json",
            ],
        ).output
    )
    assert answer["failed_links"] == ["n0-n1", "n3-n4"]
    assert answer["partitions_created"] == 1 and answer["lost_pairs"] == 9
    bad = runner.invoke(app, ["twin", "what-if", "--topology", str(path), "--fail-link", "n0-n3"])
    assert isinstance(bad.exception, TopologyError) and "no link 'n0-n3'" in str(bad.exception)
