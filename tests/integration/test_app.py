"""The one app on a real local Ray: components start, report, and leave nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
import ray

import x0tta6bl4 as x0
from x0tta6bl4.actors.app import COMPONENTS, App
from x0tta6bl4.config import Settings, load_settings, parse_overrides

pytestmark = pytest.mark.ray


def _metrics_only(*overrides: str) -> Settings:
    """Settings that enable the metrics component alone: these tests are about the
    app's mechanics; each capability's component has tests of its own."""
    others = [f"{spec.flag}=false" for spec in COMPONENTS if spec.name != "metrics"]
    return load_settings(overrides=parse_overrides([*others, *overrides]))


def test_app_serves_metrics_and_stops_cleanly(ray_session) -> None:
    app = App(_metrics_only("metrics.port=0"))
    app.start()
    states = {s.name: s for s in app.status()}
    assert states["metrics"].state == "running"
    url = states["metrics"].detail["url"]
    assert "x0tta6bl4_up 1.0" in httpx.get(url).text
    app.stop()
    assert states["metrics"].state == "stopped"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
    assert ray.is_initialized(), "the app must not stop a Ray it did not start"


def test_disabled_component_is_reported_off(ray_session) -> None:
    with App(_metrics_only("metrics.enabled=false")) as app:
        assert {s.name: s.state for s in app.status()}["metrics"] == "off"


def test_only_limits_the_app_to_named_components(ray_session) -> None:
    """`mesh up` runs the app with only={"mesh"}: nothing else starts or is listed."""
    with App(load_settings(overrides=parse_overrides(["metrics.port=0"])), only={"metrics"}) as app:
        assert [(s.name, s.state) for s in app.status()] == [("metrics", "running")]


def test_busy_port_fails_that_component_only(ray_session) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with App(_metrics_only(f"metrics.port={port}")) as app:
            state = {s.name: s for s in app.status()}["metrics"]
            assert state.state == "failed"
            assert f"127.0.0.1:{port}" in (state.error or "")


def test_sdk_connect_sees_named_actors(ray_session) -> None:
    mesh = x0.connect()
    assert mesh.info.namespace == ray_session.namespace
    assert not mesh.info.started_here

    @ray.remote(num_cpus=0)
    class Probe:
        def ping(self) -> str:
            return "pong"

    probe = Probe.options(name="sdk-probe").remote()
    assert ray.get(probe.ping.remote()) == "pong"
    assert "sdk-probe" in mesh.actors()
    ray.kill(probe)
    mesh.close()
    assert ray.is_initialized()


@pytest.mark.slow
def test_run_command_starts_and_tears_down(tmp_path) -> None:
    """`x0tta6bl4 run --duration` in its own process: exits 0, leaves no Ray behind."""
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "X0_METRICS__PORT": "0",
        "X0_RAY__DASHBOARD": "false",
        "X0_DATA_DIR": str(tmp_path),
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "x0tta6bl4", "run", "--duration", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        stdout, stderr = child.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)  # the run tears down on Ctrl-C
        stdout, stderr = child.communicate(timeout=180)
        pytest.fail(f"x0tta6bl4 run did not stop by itself:\n{stdout[-2000:]}")
    assert child.returncode == 0, stderr[-2000:]
    assert "running" in stdout and "stopped; nothing left running" in stdout
    # Ray names its session directory after the driver's pid; none of its processes may remain.
    leftovers = subprocess.run(
        ["pgrep", "-f", f"session_[0-9_-]*_{child.pid}/"], capture_output=True, text=True
    )
    assert leftovers.stdout == ""
