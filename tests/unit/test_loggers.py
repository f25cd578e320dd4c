from __future__ import annotations

import json
import logging

import pytest

from x0tta6bl4 import loggers


@pytest.fixture(autouse=True)
def _restore_logging():
    root = logging.getLogger("x0tta6bl4")
    saved = (root.handlers[:], root.level, root.propagate)
    yield
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]


def test_json_lines_carry_bound_context_once(capsys) -> None:
    loggers.configure_logging("json", "info")
    log = loggers.mesh.bind(node="n3")
    log.info("probe_sent", link="n3-n4")
    log.debug("too_detailed")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["event"] == "probe_sent"
    assert (event["node"], event["link"], event["level"]) == ("n3", "n3-n4", "info")
    assert event["logger"] == "x0tta6bl4.mesh"


def test_exceptions_keep_their_traceback(capsys) -> None:
    loggers.configure_logging("json", "info")
    try:
        raise ValueError("boom")
    except ValueError:
        loggers.supervisor.exception("phase_failed", phase="plan")
    event = json.loads(capsys.readouterr().err)
    assert event["phase"] == "plan" and "ValueError: boom" in event["exception"]


def test_library_never_writes_to_stdout(capsys) -> None:
    loggers.payments.warning("unconfigured", order="o1")
    assert capsys.readouterr().out == ""
