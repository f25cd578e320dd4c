"""Session-wide fixtures: one real local Ray, privilege gates that say why they skip."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator

import pytest

# Tests run a private local Ray without token auth; set before Ray is imported.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

IS_ROOT = os.geteuid() == 0
HAS_BCC = importlib.util.find_spec("bcc") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_root = pytest.mark.skip(
        reason="needs root for network namespaces, routes and eBPF; run `sudo make test`"
    )
    skip_bpf = pytest.mark.skip(
        reason="needs Debian's bcc (python3-bpfcc); run `make test` "
        "as root so the setup installs it"
    )
    for item in items:
        if "root" in item.keywords and not IS_ROOT:
            item.add_marker(skip_root)
        if "bpf" in item.keywords and not (HAS_BCC and IS_ROOT):
            item.add_marker(skip_bpf)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[object]:
    """One real local Ray for the whole test session (no dashboard, token auth off)."""
    from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray
    from x0tta6bl4.config import RaySettings
    from x0tta6bl4.errors import ClusterError

    settings = RaySettings(dashboard=False, num_cpus=2, namespace="x0tta6bl4-test")
    try:
        info = ensure_ray(settings)
    except ClusterError:
        # A heavily loaded host can miss Ray's node start-up deadline once; every
        # Ray test depends on this fixture, so give it a second chance.
        info = ensure_ray(settings)
    yield info
    shutdown_ray()
