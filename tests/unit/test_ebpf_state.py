"""The attachment records: atomic per-owner files, and owner liveness."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from x0tta6bl4.ebpf._state import (
    PERSISTENT,
    AttachmentRecord,
    StateStore,
    owner_alive,
    process_owner,
)


def _record(interface: str = "v0", program: str = "xdp") -> AttachmentRecord:
    return AttachmentRecord(program, "ns1", interface, 7, "drv", [42])


def test_put_replaces_by_key_and_remove_returns_the_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    store.put("o1", _record())
    store.put("o1", _record())
    store.put("o1", _record("v1"))
    store.put("o2", _record(program="tc"))
    assert {o: [r.interface for r in rs] for o, rs in store.all().items()} == {
        "o1": ["v0", "v1"],
        "o2": ["v0"],
    }
    assert store.get("o1", ("xdp", "ns1", "v1")) == _record("v1")
    assert store.remove("o1", ("xdp", "ns1", "v0")) == _record()
    assert store.remove("o1", ("xdp", "ns1", "v0")) is None
    assert store.all()["o1"][0].prog_ids == (42,)
    store.remove("o1", ("xdp", "ns1", "v1"))
    assert not (tmp_path / "state" / "o1.json").exists(), "an owner with nothing left has no file"
    store.drop_owner("o2")
    assert store.all() == {}


def test_unreadable_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    store.put("o1", _record())
    assert store.all() == {"broken": [], "o1": [_record()]}


def test_owner_liveness() -> None:
    me = process_owner()
    assert me.startswith(f"{os.getpid()}-")
    assert owner_alive(me)
    assert owner_alive(f"{me}-3"), "a loader number after the process id is allowed"
    assert owner_alive(PERSISTENT)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = process_owner(child.pid)
    child.wait()
    assert not owner_alive(gone)
    pid, _, start = me.partition("-")
    assert not owner_alive(f"{pid}-{int(start) + 1}"), "same pid, other start time: reused pid"
    assert not owner_alive("garbage")
