"""Explanations: integrated gradients add up, and they name the injected fault's location."""

from __future__ import annotations

import numpy as np
import torch

from x0tta6bl4.mesh.topology import generate
from x0tta6bl4.ml.explain import _baseline, explain, integrated_gradients
from x0tta6bl4.ml.rank import Analyzer, default_model
from x0tta6bl4.ml.scenarios import generate_case
from x0tta6bl4.ml.schema import FaultKind
from x0tta6bl4.ml.train import case_graph, logits


def _clear_case(kind: FaultKind, seed: int):
    return generate_case(generate("waxman", 14, seed=seed), kind, np.random.default_rng(seed))


def test_integrated_gradients_are_complete():
    model = default_model()
    graph = case_graph(_clear_case(FaultKind.LINK_LOSS, 3))
    target = int(np.argmax(logits(model, graph)))
    attr = integrated_gradients(model, graph, target, steps=64)
    with torch.no_grad():
        edges = torch.from_numpy(graph.edge_index)
        gap = float(
            model(torch.from_numpy(graph.x), edges)[target]
            - model(torch.from_numpy(_baseline(graph.x)), edges)[target]
        )
    assert abs(attr.sum() - gap) <= 0.1 * abs(gap) + 0.05


def test_explanation_names_a_lossy_link():
    case = _clear_case(FaultKind.LINK_LOSS, 7)
    result = Analyzer(default_model()).analyze(
        case.frame(), case.topology, case.label.start_s, top=1
    )
    cause = result["root_causes"][0]
    assert cause["entity"] == case.label.location
    assert cause["kind"] == "link-loss"
    text = cause["explanation"]["text"]
    assert text.startswith(f"link {case.label.location}: ")
    assert f"loss on {case.label.location} rose" in text


def test_explanation_of_a_crash_says_the_node_went_silent():
    case = _clear_case(FaultKind.NODE_CRASH, 4)
    graph = case_graph(case)
    out = logits(default_model(), graph)
    top = int(np.argmax(out))
    assert graph.entities[top] == case.label.location
    exp = explain(default_model(), graph, top, float(out[top]))
    assert "stopped reporting" in exp.text or "fell to 0" in exp.text
    node = case.label.location
    near = set(case.topology.neighbors(node)) | {
        lk.key for lk in case.topology.links if node in lk.ends
    }
    assert exp.neighbours and {n for n, _ in exp.neighbours} <= near
