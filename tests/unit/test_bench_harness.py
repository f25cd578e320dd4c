from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "_harness.py"
_spec = importlib.util.spec_from_file_location("bench_harness", _PATH)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def test_report_writes_the_documented_json(tmp_path) -> None:
    out = tmp_path / "demo.json"
    args = argparse.Namespace(quick=True, out=out)
    harness.report("demo", args, {"heal": {"p50_ms": 12.5}, "nodes": 8})
    payload = json.loads(out.read_text())
    assert payload["benchmark"] == "demo" and payload["quick"] is True
    assert payload["metrics"] == {"heal.p50_ms": 12.5, "nodes": 8}
    assert set(payload["env"]) == {"cpu", "cores", "kernel", "python", "ray", "torch", "git_sha"}
    assert payload["env"]["torch"].startswith("2.13")


def test_labels_pass_and_other_types_are_refused() -> None:
    assert harness.flatten({"xdp": {"mode": "drv"}}) == {"xdp.mode": "drv"}
    with pytest.raises(TypeError, match="metric rows is list"):
        harness.flatten({"rows": [1, 2]})
