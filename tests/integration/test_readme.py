"""The README's SDK example really runs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _sdk_example() -> str:
    section = README.read_text(encoding="utf-8").split("## SDK", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's SDK section has no python example"
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_readme_sdk_example_runs(tmp_path) -> None:
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "X0_DATA_DIR": str(tmp_path),
        "X0_RAY__DASHBOARD_PORT": str(_free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-c", _sdk_example()], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("http://127.0.0.1:")
    assert lines[1].startswith("[")
