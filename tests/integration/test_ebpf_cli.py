"""`x0tta6bl4 ebpf attach|status|top|detach` on a real namespace, and the errors a user
without privileges gets from the CLI and from the agent (the component's degrade path)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.integration.ebpf_net import VethPair, sh, udp_blast, veth_pair
from x0tta6bl4.cli import app

pytestmark = [pytest.mark.root, pytest.mark.bpf]

VENV_BIN = Path(sys.executable).parent
NO_CAPS = ["setpriv", "--bounding-set", "-all", "--inh-caps", "-all", "--"]


@pytest.fixture
def pair() -> Iterator[VethPair]:
    with veth_pair() as p:
        yield p


def _cli(state: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["--set", f"ebpf.state_dir={state}", "ebpf", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_attach_status_top_detach(pair: VethPair, tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = _cli(state, "attach", pair.if_b, "--netns", pair.ns_b)
    assert "attached xdp" in out and "skb mode" in out, "auto on a veth: generic XDP"
    assert "hw: XDP hw mode" in out and "drv: not tried" in out, "what auto passed over, and why"
    assert "attached tc" in out
    status = _cli(state, "status", "--netns", pair.ns_b)
    assert status.count("persistent") == 2
    udp_blast(pair.ns_a, pair.ip_b, 9, 200)
    top = _cli(state, "top", "--netns", pair.ns_b, "--duration", "2.5", "--interval-s", "1")
    assert f"{pair.ns_b}/{pair.if_b}" in top
    assert " pkt" in top and " pps" in top
    assert "drop reasons" in top

    out = _cli(state, "detach", pair.if_b, "--netns", pair.ns_b)
    assert "detached xdp" in out and "detached tc" in out
    assert "nothing of ours" in _cli(state, "detach", pair.if_b, "--netns", pair.ns_b)
    net = json.loads(sh("bpftool", "-j", "net", "show", ns=pair.ns_b))[0]
    assert net["xdp"] == [] and net["tc"] == []
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", pair.if_b, ns=pair.ns_b)


def test_without_privileges_the_cli_says_why_and_how_to_fix(pair: VethPair, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *NO_CAPS,
            str(VENV_BIN / "x0tta6bl4"),
            "--set",
            f"ebpf.state_dir={tmp_path}",
            "ebpf",
            "attach",
            pair.if_a,
            "--netns",
            pair.ns_a,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "needs CAP_NET_ADMIN" in result.stderr
    assert "fix:" in result.stderr and "root" in result.stderr
    net = json.loads(sh("bpftool", "-j", "net", "show", ns=pair.ns_a))[0]
    assert net["xdp"] == [] and net["tc"] == []


_AGENT_START = """
from pathlib import Path
import sys
from x0tta6bl4.ebpf import AgentConfig, EbpfAgentLogic
from x0tta6bl4.errors import PrivilegeError
try:
    EbpfAgentLogic(AgentConfig(state_dir=Path(sys.argv[1])), "ebpf:test").start()
except PrivilegeError as exc:
    print("PrivilegeError", exc.fix)
"""


def test_without_privileges_the_agent_refuses_before_touching_anything(tmp_path: Path) -> None:
    result = subprocess.run(
        [*NO_CAPS, sys.executable, "-c", _AGENT_START, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.startswith("PrivilegeError run as root"), result.stderr
