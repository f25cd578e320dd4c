"""Analyze: statistical localisation on the topology, and the Trainer-backed analyzer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from x0tta6bl4.mapek._types import DiagnosisKind, Symptom
from x0tta6bl4.mapek.analyze import StatisticalAnalyzer, TrainerAnalyzer
from x0tta6bl4.mapek.ingest import Window
from x0tta6bl4.mapek.monitor import MonitorReport
from x0tta6bl4.mesh.topology import ring_chords


def _s(entity, metric, value=1.0, score=10.0, kind=None):
    kind = kind or ("link" if "-" in entity else "node")
    return Symptom(0.0, kind, entity, metric, value, 0.0, 0.1, score)


TOPO = ring_chords(8)  # n0..n7 in a ring, chords n0-n4/n3-n7/n6-n2...
ANALYZER = StatisticalAnalyzer(TOPO)


def _kinds(diagnoses):
    return {(d.kind, d.root_cause) for d in diagnoses}


def test_single_bad_link_is_the_root_cause() -> None:
    got = ANALYZER.diagnose([_s("n1-n2", "loss", 0.3), _s("n1-n2", "etx", 2.0)], {})
    assert _kinds(got) == {(DiagnosisKind.LINK_DEGRADED, "n1-n2")}
    assert "n1-n2 loss=0.3" in got[0].explanation
    down = ANALYZER.diagnose([_s("n1-n2", "up", 0.0)], {})
    assert _kinds(down) == {(DiagnosisKind.LINK_DOWN, "n1-n2")}
    flapping = ANALYZER.diagnose([_s("n1-n2", "up", 0.4)], {})
    assert _kinds(flapping) == {(DiagnosisKind.LINK_DEGRADED, "n1-n2")}


def test_silent_node_is_down_and_absorbs_its_links() -> None:
    got = ANALYZER.diagnose([_s("n5", "silent", 6.0), _s("n4-n5", "loss", 1.0)], {})
    assert _kinds(got) == {(DiagnosisKind.NODE_DOWN, "n5")}
    assert "stopped reporting" in got[0].explanation


def test_every_link_of_a_node_down_at_once_is_the_node() -> None:
    links = [link.key for link in TOPO.links if "n5" in link.ends]
    got = ANALYZER.diagnose([_s(key, "up", 0.0) for key in links], {})
    assert _kinds(got) == {(DiagnosisKind.NODE_DOWN, "n5")}


def test_links_down_in_the_view_make_a_node_down_without_up_symptoms() -> None:
    """Baselines learned while the mesh converged may miss a link going down; the
    window's down links still count, once something changed at the node."""
    links = [link.key for link in TOPO.links if "n5" in link.ends]
    got = ANALYZER.diagnose([_s(links[0], "df", 0.0)], {}, frozenset(links))
    assert _kinds(got) == {(DiagnosisKind.NODE_DOWN, "n5")}
    assert "every link of n5 went down at once" in got[0].explanation
    # Known down and quiet: no new diagnosis; one link still up: not the node.
    assert ANALYZER.diagnose([], {}, frozenset(links)) == []
    partly = ANALYZER.diagnose([_s(links[0], "df", 0.0)], {}, frozenset(links[1:]))
    assert _kinds(partly) == {(DiagnosisKind.LINK_DEGRADED, links[0])}


def test_a_node_reporting_no_link_up_is_down() -> None:
    got = ANALYZER.diagnose([_s("n5", "links_up", 0.0, kind="node")], {})
    assert _kinds(got) == {(DiagnosisKind.NODE_DOWN, "n5")}
    assert "reports none of its links up" in got[0].explanation
    fewer = ANALYZER.diagnose([_s("n5", "links_up", 1.0, kind="node")], {})
    assert _kinds(fewer) == {(DiagnosisKind.NODE_DEGRADED, "n5")}


def test_most_links_of_a_node_misbehaving_blames_the_node() -> None:
    links = [link.key for link in TOPO.links if "n1" in link.ends]
    got = ANALYZER.diagnose([_s(key, "rtt_ms", 40.0) for key in links[:2]], {})
    assert _kinds(got) == {(DiagnosisKind.NODE_DEGRADED, "n1")}
    assert f"2 of {len(links)} links of n1 misbehave" in got[0].explanation


def test_lasting_flags_make_a_node_byzantine() -> None:
    analyzer = StatisticalAnalyzer(TOPO, flag_ticks=3)
    flags = {"n6": {"n5", "n7"}, "zz": {"n1"}}
    assert analyzer.diagnose([], flags) == analyzer.diagnose([], flags) == []
    got = analyzer.diagnose([], flags)
    assert _kinds(got) == {(DiagnosisKind.BYZANTINE, "n6")}
    assert got[0].confidence == pytest.approx(0.7)
    analyzer.diagnose([], {})  # a gap restarts the count
    assert analyzer.diagnose([], flags) == []


def _report(symptoms):
    return MonitorReport(0.0, Window(0.0, 1.0), list(symptoms))


def _frame():
    return pd.DataFrame(np.ones((10, 2)), columns=["n1-n2:loss", "n1:cpu"], index=range(10))


async def test_trainer_root_cause_and_explanation_are_used() -> None:
    calls = []

    async def infer(frame, edges, start):
        calls.append((frame.shape, len(edges), start))
        return {
            "model_version": "v7",
            "root_causes": [
                {
                    "entity": "n2",
                    "kind": "node-overload",
                    "score": 0.91,
                    "explanation": {"text": "n2: cpu rose first; its links followed"},
                },
                {"entity": "n1-n2", "kind": "link-loss", "score": 0.4, "explanation": {}},
            ],
        }

    analyzer = TrainerAnalyzer(infer, _frame, ANALYZER)
    got = await analyzer.analyze(_report([_s("n1-n2", "loss", 0.3), _s("n2", "cpu")]), {})
    assert calls == [((10, 2), len(TOPO.links), None)]
    assert [(d.kind, d.root_cause, d.source) for d in got] == [
        (DiagnosisKind.NODE_DEGRADED, "n2", "trainer:v7")
    ]
    assert got[0].explanation == "n2: cpu rose first; its links followed"


async def test_trainer_failure_falls_back_to_statistics() -> None:
    async def broken(frame, edges, start):
        raise RuntimeError("trainer actor died")

    analyzer = TrainerAnalyzer(broken, _frame, ANALYZER)
    got = await analyzer.analyze(_report([_s("n1-n2", "loss", 0.3)]), {})
    assert _kinds(got) == {(DiagnosisKind.LINK_DEGRADED, "n1-n2")}


async def test_hard_evidence_is_kept_next_to_the_model_answer() -> None:
    async def infer(frame, edges, start):
        return {
            "model_version": "v1",
            "root_causes": [
                {
                    "entity": "n1-n2",
                    "kind": "link-delay",
                    "score": 0.8,
                    "explanation": {"text": "t"},
                }
            ],
        }

    analyzer = TrainerAnalyzer(infer, _frame, ANALYZER)
    got = await analyzer.analyze(_report([_s("n1-n2", "rtt_ms"), _s("n6", "silent", 9.0)]), {})
    assert _kinds(got) == {(DiagnosisKind.LINK_DEGRADED, "n1-n2"), (DiagnosisKind.NODE_DOWN, "n6")}


def test_a_down_node_flagged_for_unconfirmed_links_is_down_not_byzantine() -> None:
    links = [link.key for link in TOPO.links if "n5" in link.ends]
    analyzer = StatisticalAnalyzer(TOPO, flag_ticks=1)
    got = analyzer.diagnose([_s(key, "up", 0.0) for key in links], {"n5": {"n4", "n6"}})
    assert _kinds(got) == {(DiagnosisKind.NODE_DOWN, "n5")}


def test_one_link_far_worse_than_its_neighbours_is_the_cause_not_the_node() -> None:
    """A lossy link among links that wobble (delayed hellos on a busy host) and the route
    churn it causes at its ends: the link is blamed, not its nodes."""
    links = [link.key for link in TOPO.links if "n1" in link.ends]
    lossy, wobbly = links[0], links[1]
    symptoms = [
        _s(lossy, "loss", 0.4, score=40.0),
        _s(wobbly, "loss", 0.07, score=7.0),
        _s("n1", "route_changes", 6.0, score=8.0),
    ]
    got = ANALYZER.diagnose(symptoms, {})
    assert (DiagnosisKind.LINK_DEGRADED, lossy) in _kinds(got)
    assert not any(d.kind is DiagnosisKind.NODE_DEGRADED for d in got), got
    # Comparable links still blame the node, and the node's own non-routing trouble too.
    even = ANALYZER.diagnose([_s(lossy, "loss", score=12.0), _s(wobbly, "loss", score=9.0)], {})
    assert _kinds(even) == {(DiagnosisKind.NODE_DEGRADED, "n1")}
    own = ANALYZER.diagnose([_s(lossy, "loss", score=40.0), _s("n1", "rejected", 9.0)], {})
    assert (DiagnosisKind.NODE_DEGRADED, "n1") in _kinds(own)


def test_most_of_the_mesh_silent_at_once_is_no_node_down() -> None:
    """The Supervisor cut off from (or starved of) telemetry: no node is to blame."""
    names = TOPO.names
    outage = ANALYZER.diagnose([_s(n, "silent", 4.0) for n in names[:5]], {})
    assert outage == []
    one = ANALYZER.diagnose([_s(names[0], "silent", 4.0), _s("n1-n2", "loss", score=20.0)], {})
    assert _kinds(one) == {
        (DiagnosisKind.NODE_DOWN, names[0]),
        (DiagnosisKind.LINK_DEGRADED, "n1-n2"),
    }
    # Other evidence still counts during an outage.
    mixed = [_s(n, "silent", 4.0) for n in names[:5]] + [_s("n6-n7", "loss", score=20.0)]
    assert _kinds(ANALYZER.diagnose(mixed, {})) == {(DiagnosisKind.LINK_DEGRADED, "n6-n7")}
