from __future__ import annotations

import pytest

from x0tta6bl4.ops.doctor import check_netem, run_checks


def test_every_failed_check_names_a_fix() -> None:
    checks = run_checks(include_ray=False)
    assert len({c.name for c in checks}) == len(checks)
    for check in checks:
        assert check.detail
        if not check.ok:
            assert check.fix, check.name


@pytest.mark.root
@pytest.mark.bpf
def test_after_setup_every_kernel_check_passes_here() -> None:
    """`make test` ran the setup, so as root everything but netem must work."""
    checks = {c.name: c for c in run_checks(include_ray=False)}
    failing = {name: c.detail for name, c in checks.items() if not c.ok and name != "netem"}
    assert failing == {}


def test_netem_check_is_a_finding_not_a_crash() -> None:
    check = check_netem()
    assert ("netem available" in check.detail) == check.ok
