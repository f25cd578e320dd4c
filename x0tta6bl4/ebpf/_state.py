"""Who attached what: one small JSON file per owner, so a crash leaves a trail.

An XDP program or TC filter stays attached after the process that attached it
dies.  Every :class:`~x0tta6bl4.ebpf.loader.Loader` writes what it attached to
``<state_dir>/<owner>.json``; an owner is a process (pid and start time, so a
reused pid is not mistaken for it) or ``persistent`` for what ``x0tta6bl4 ebpf
attach`` leaves attached on purpose.  At start-up the records of dead owners
are the stale attachments to remove.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from x0tta6bl4 import loggers

__all__ = [
    "DEFAULT_STATE_DIR",
    "PERSISTENT",
    "AttachmentRecord",
    "StateStore",
    "owner_alive",
    "process_owner",
]

log = loggers.ebpf

DEFAULT_STATE_DIR = Path("/run/x0tta6bl4/ebpf")
PERSISTENT = "persistent"


@dataclass(frozen=True)
class AttachmentRecord:
    """One attachment as written to disk."""

    program: str
    netns: str | None
    interface: str
    ifindex: int
    mode: str
    prog_ids: tuple[int, ...]
    clsact_created: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "prog_ids", tuple(self.prog_ids))

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.program, self.netns, self.interface)


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may hold spaces, so split after it.
    return stat.rsplit(")", 1)[1].split()[19]


def process_owner(pid: int | None = None) -> str:
    """The owner id of a process: ``<pid>-<start time in clock ticks>``."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid)}"


def owner_alive(owner: str) -> bool:
    """Whether the owner still runs (``persistent`` always counts as alive).

    Owners look like ``<pid>-<start time>[-<loader number>]``.
    """
    if owner == PERSISTENT:
        return True
    pid, _, rest = owner.partition("-")
    if not pid.isdigit():
        return False
    return _start_time(int(pid)) == rest.split("-", 1)[0]


class StateStore:
    """The state directory; every write is atomic and serialised by a lock file."""

    def __init__(self, state_dir: Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir)

    def _path(self, owner: str) -> Path:
        return self.state_dir / f"{owner}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, path: Path) -> list[AttachmentRecord]:
        try:
            rows = json.loads(path.read_text())
            return [AttachmentRecord(**row) for row in rows]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ebpf_state_unreadable", path=str(path), error=str(exc))
            return []

    def _write(self, owner: str, records: list[AttachmentRecord]) -> None:
        path = self._path(owner)
        if not records:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps([asdict(r) for r in records], indent=1))
        tmp.replace(path)

    def put(self, owner: str, record: AttachmentRecord) -> None:
        """Add or replace the record of (program, netns, interface) for ``owner``."""
        with self._locked():
            records = [r for r in self._read(self._path(owner)) if r.key != record.key]
            self._write(owner, [*records, record])

    def remove(self, owner: str, key: tuple[str, str | None, str]) -> AttachmentRecord | None:
        """Drop one record of ``owner``; returns it, or None when there was none."""
        with self._locked():
            records = self._read(self._path(owner))
            kept = [r for r in records if r.key != key]
            self._write(owner, kept)
        gone = [r for r in records if r.key == key]
        return gone[0] if gone else None

    def get(self, owner: str, key: tuple[str, str | None, str]) -> AttachmentRecord | None:
        found = [r for r in self._read(self._path(owner)) if r.key == key]
        return found[0] if found else None

    def all(self) -> dict[str, list[AttachmentRecord]]:
        """Every owner's records."""
        if not self.state_dir.is_dir():
            return {}
        return {p.stem: self._read(p) for p in sorted(self.state_dir.glob("*.json"))}

    def drop_owner(self, owner: str) -> None:
        with self._locked():
            self._path(owner).unlink(missing_ok=True)
