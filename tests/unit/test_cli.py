from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from x0tta6bl4 import __version__
from x0tta6bl4.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == __version__


def test_config_show_json_reports_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X0_MESH__SEED", "9")
    monkeypatch.setenv("X0_PAYMENTS__TRONGRID_API_KEY", "very-secret-key")
    result = runner.invoke(app, ["--set", "mesh.nodes=7", "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["mesh.nodes"] == {"value": 7, "source": "cli"}
    assert shown["mesh.seed"] == {"value": 9, "source": "env"}
    assert shown["payments.trongrid_api_key"] == {"value": "***", "source": "env"}
    assert "very-secret-key" not in result.output


def test_config_show_table() -> None:
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0
    assert "mesh.byzantine" in result.output and "default" in result.output


def _x0(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "x0tta6bl4", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_invalid_setting_exits_1_with_message_and_fix() -> None:
    result = _x0("--set", "mesh.probe_interval_s=0", "config", "show")
    assert result.returncode == 1
    assert "error: invalid configuration: mesh.probe_interval_s" in result.stderr
    assert "fix:" in result.stderr and "X0_MESH__PROBE_INTERVAL_S" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_prints_a_row_per_check() -> None:
    result = _x0("doctor", "--skip-ray")
    for name in ("privileges", "netns", "bcc", "kernel headers", "bpffs", "xdp + tc", "gpu"):
        assert name in result.stdout
    assert result.returncode == 0, result.stdout
