"""What of ours is attached on this host, whoever attached it; removal by identity.

Used by :class:`~x0tta6bl4.ebpf.loader.Loader` for stale-attachment cleanup,
and by the CLI (``ebpf status``, ``detach``, ``top``), which works without the
process that attached the programs: programs and maps are found by id.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyroute2 import IPRoute

from x0tta6bl4.ebpf import _netlink as nl
from x0tta6bl4.ebpf import _sys
from x0tta6bl4.ebpf._state import AttachmentRecord, StateStore, owner_alive
from x0tta6bl4.ebpf.programs import PROGRAM_PREFIX, IfaceCount, ProgramKind, decode_iface
from x0tta6bl4.errors import InterfaceNotFoundError

__all__ = ["KernelAttachment", "read_found", "remove_recorded", "scan"]


@dataclass(frozen=True)
class KernelAttachment:
    """One of our programs found on an interface by :func:`scan`, with its owner if known."""

    program: ProgramKind
    netns: str | None
    interface: str
    ifindex: int
    mode: str
    names: tuple[str, ...]
    prog_ids: tuple[int, ...]
    owner: str | None
    owner_alive: bool

    def record(self) -> AttachmentRecord:
        """What a state record of this attachment would hold (clsact ownership unknown)."""
        return AttachmentRecord(
            self.program.value, self.netns, self.interface, self.ifindex, self.mode, self.prog_ids
        )


def remove_recorded(record: AttachmentRecord) -> bool:
    """Take one attachment off the kernel by identity; returns whether anything was removed.

    Works without the process that attached it (programs are found by id);
    a missing namespace or interface means there is nothing left to remove.
    """
    kind = ProgramKind(record.program)
    try:
        with nl.rtnl(record.netns) as ipr:
            link = nl.find_link(ipr, record.netns, record.interface, require_up=False)
            if link.index != record.ifindex:
                return False
            if kind is ProgramKind.XDP:
                return _remove_xdp(ipr, link, record)
            return _remove_tc(ipr, link, record)
    except InterfaceNotFoundError:
        return False


def _remove_xdp(ipr: IPRoute, link: nl.Link, record: AttachmentRecord) -> bool:
    if not link.xdp_prog_id or link.xdp_prog_id not in record.prog_ids:
        return False
    try:
        fd = _sys.prog_fd_by_id(link.xdp_prog_id)
    except _sys.BpfSyscallError:
        return False
    try:
        mode = link.xdp_mode or nl.XdpMode(record.mode)
        return nl.xdp_detach(ipr, link, mode, fd)
    finally:
        os.close(fd)


def _remove_tc(ipr: IPRoute, link: nl.Link, record: AttachmentRecord) -> bool:
    removed = False
    for direction in nl.Direction:
        ours = [
            f
            for f in nl.tc_filters(ipr, link.index, direction)
            if f.pref == nl.TC_PREF
            and f.handle == nl.TC_HANDLE
            and f.name.startswith(PROGRAM_PREFIX)
        ]
        if ours:
            removed |= nl.tc_filter_del(ipr, link, direction)
    if (
        record.clsact_created
        and nl.clsact_present(ipr, link.index)
        and not any(nl.tc_filters(ipr, link.index, d) for d in nl.Direction)
    ):
        nl.clsact_del(ipr, link)
        removed = True
    return removed


def scan(
    namespaces: Iterable[str | None] = (None,), store: StateStore | None = None
) -> list[KernelAttachment]:
    """Our programs on every interface of ``namespaces`` (None: the host namespace).

    ``owner`` comes from the state records when one matches; ``owner_alive``
    says whether that owner still runs.  TC program ids come from the records
    (netlink does not report them through pyroute2).
    """
    records = store.all() if store is not None else {}
    claims = {r.key: (owner, r) for owner, rs in records.items() for r in rs}
    found: list[KernelAttachment] = []
    for netns in namespaces:
        try:
            with nl.rtnl(netns) as ipr:
                for link in nl.links(ipr, netns):
                    found.extend(_scan_link(ipr, link, claims))
        except InterfaceNotFoundError:
            continue
    return found


_Claims = dict[tuple[str, str | None, str], tuple[str, AttachmentRecord]]


def _found(
    kind: ProgramKind,
    link: nl.Link,
    mode: str,
    names: tuple[str, ...],
    prog_ids: tuple[int, ...],
    claims: _Claims,
) -> KernelAttachment:
    owner, record = claims.get((kind.value, link.netns, link.name), (None, None))
    if kind is ProgramKind.TC and record is not None and record.ifindex == link.index:
        prog_ids = record.prog_ids
    return KernelAttachment(
        kind,
        link.netns,
        link.name,
        link.index,
        mode,
        names,
        prog_ids,
        owner,
        owner is not None and owner_alive(owner),
    )


def _scan_link(ipr: IPRoute, link: nl.Link, claims: _Claims) -> list[KernelAttachment]:
    result = []
    if link.xdp_prog_id:
        try:
            name = _sys.prog_info_by_id(link.xdp_prog_id).name
        except _sys.BpfSyscallError:
            name = ""
        if name.startswith(PROGRAM_PREFIX):
            mode = link.xdp_mode.value if link.xdp_mode else ""
            result.append(_found(ProgramKind.XDP, link, mode, (name,), (link.xdp_prog_id,), claims))
    names = tuple(
        f.name
        for d in nl.Direction
        for f in nl.tc_filters(ipr, link.index, d)
        if f.pref == nl.TC_PREF and f.handle == nl.TC_HANDLE and f.name.startswith(PROGRAM_PREFIX)
    )
    if names:
        result.append(_found(ProgramKind.TC, link, "clsact", names, (), claims))
    return result


_COUNTER_MAPS = {kind.counter_map for kind in ProgramKind}


def read_found(found: Sequence[KernelAttachment]) -> list[tuple[str | None, str, IfaceCount]]:
    """Cumulative counters of attachments found by :func:`scan`, read from their maps by id.

    One map may serve several interfaces (one compiled copy attached many
    times); each is read once and its rows given to the interface of their ifindex.
    """
    slots: dict[int, dict[int, tuple[str | None, str]]] = {}
    for attachment in found:
        for prog_id in attachment.prog_ids:
            try:
                info = _sys.prog_info_by_id(prog_id)
            except _sys.BpfSyscallError:
                continue  # detached and freed since the scan
            for map_id in info.map_ids:
                where = (attachment.netns, attachment.interface)
                slots.setdefault(map_id, {})[attachment.ifindex] = where
    rows = []
    ncpu = _sys.possible_cpus()
    for map_id, by_ifindex in slots.items():
        try:
            fd = _sys.map_fd_by_id(map_id)
        except _sys.BpfSyscallError:
            continue
        try:
            meta = _sys.map_info(fd)
            if meta.name not in _COUNTER_MAPS:
                continue
            items = _sys.map_items(fd, meta.key_size, meta.value_size, per_cpu=True)
        finally:
            os.close(fd)
        for count in decode_iface(items, ncpu):
            slot = by_ifindex.get(count.ifindex)
            if slot is not None:
                rows.append((slot[0], slot[1], count))
    return rows
