"""Attach the counting programs to interfaces, and take them off again leaving nothing.

:class:`Loader` compiles each program once and attaches the same program to
many interfaces; its maps are keyed by ifindex.  Interfaces in different
network namespaces may share an ifindex, so a second copy (a *shard*) is
compiled only when an ifindex is already taken in every existing copy.

Every attachment is recorded in the state directory (see
:mod:`x0tta6bl4.ebpf._state`) before this returns, so a crashed owner's
programs are found and removed by the next :meth:`Loader.cleanup_stale`.
Removal is always by identity: XDP is detached with ``XDP_FLAGS_REPLACE`` and
the expected program, TC filters only at our priority and handle and only if
they carry our program name, clsact only if we created it and it is empty.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute

from x0tta6bl4 import loggers
from x0tta6bl4.ebpf import _netlink as nl
from x0tta6bl4.ebpf import _sys
from x0tta6bl4.ebpf._compile import Compiled, compile_source, require_privileges
from x0tta6bl4.ebpf._state import (
    DEFAULT_STATE_DIR,
    AttachmentRecord,
    StateStore,
    owner_alive,
    process_owner,
)
from x0tta6bl4.ebpf.inventory import KernelAttachment, remove_recorded, scan
from x0tta6bl4.ebpf.programs import (
    IFACE_FUNCTIONS,
    IFACE_SOURCES,
    PROGRAM_PREFIX,
    IfaceCount,
    ProgramKind,
    decode_iface,
)
from x0tta6bl4.errors import (
    AttachConflictError,
    ConfigError,
    KernelFeatureError,
    X0Error,
)

__all__ = ["Attachment", "Fallback", "Loader"]

log = loggers.ebpf

_AUTO_ORDER = (nl.XdpMode.HW, nl.XdpMode.DRV, nl.XdpMode.SKB)
_VETH_NATIVE_SKIPPED = (
    "not tried on a veth: native XDP there makes the kernel turn off GSO on the peer, "
    "which costs TCP throughput more than generic mode does (benchmarks/ebpf_overhead.py); "
    "force it with mode=drv"
)
_XDP_NAME = PROGRAM_PREFIX + "xdp"
_loader_numbers = itertools.count(1)


@dataclass(frozen=True)
class Fallback:
    """An XDP mode that ``auto`` tried and the kernel refused, or skipped, and why."""

    mode: str
    reason: str


@dataclass(frozen=True)
class Attachment:
    """A program attached by a :class:`Loader`.

    ``mode`` is the XDP mode obtained (``hw``, ``drv`` or ``skb``) or ``clsact``
    for TC; ``fallbacks`` lists the modes ``auto`` passed over before it, and why.
    """

    program: ProgramKind
    interface: str
    netns: str | None
    ifindex: int
    mode: str
    prog_ids: tuple[int, ...]
    fallbacks: tuple[Fallback, ...] = ()
    clsact_created: bool = False

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.program.value, self.netns, self.interface)

    def record(self) -> AttachmentRecord:
        return AttachmentRecord(
            program=self.program.value,
            netns=self.netns,
            interface=self.interface,
            ifindex=self.ifindex,
            mode=self.mode,
            prog_ids=self.prog_ids,
            clsact_created=self.clsact_created,
        )


@dataclass
class _Shard:
    """One compiled copy of the interface programs; each ifindex names one interface in it."""

    compiled: Compiled
    slots: dict[int, tuple[str | None, str]] = field(default_factory=dict)
    users: dict[int, set[ProgramKind]] = field(default_factory=dict)

    def fits(self, ifindex: int, where: tuple[str | None, str]) -> bool:
        return self.slots.get(ifindex, where) == where


class Loader:
    """Attaches XDP and TC programs; one per process or actor.

    Args:
        state_dir: where attachments are recorded for crash recovery.
        owner: the owner id to record under; default: this process and loader.
        max_keys: entries of each counter map (interfaces x protocols x hooks).
    """

    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        *,
        owner: str | None = None,
        max_keys: int = 4096,
    ) -> None:
        self.store = StateStore(state_dir)
        self.owner = owner or f"{process_owner()}-{next(_loader_numbers)}"
        self.max_keys = max_keys
        self._lock = threading.RLock()
        self._shards: list[_Shard] = []
        self._attachments: dict[tuple[str, str | None, str], tuple[Attachment, _Shard]] = {}

    # -- attach ---------------------------------------------------------------------------

    def attach(
        self,
        program: ProgramKind | str,
        interface: str,
        mode: nl.XdpMode | str = "auto",
        *,
        netns: str | None = None,
    ) -> Attachment:
        """Attach ``program`` to ``interface`` (in ``netns``, or the host namespace).

        Idempotent: attaching what this loader already attached returns it.
        Raises :class:`InterfaceNotFoundError`, :class:`InterfaceDownError`,
        :class:`PrivilegeError`, :class:`KernelFeatureError` (no headers, BTF or
        usable XDP mode), :class:`VerifierError` or :class:`AttachConflictError`.
        """
        kind = _kind(program)
        xdp_mode = _mode(mode)
        if kind is ProgramKind.TC and xdp_mode is not nl.XdpMode.AUTO:
            raise ConfigError(
                f"mode={xdp_mode.value} applies to XDP only", fix="leave mode at auto for tc"
            )
        require_privileges()
        key = (kind.value, netns, interface)
        with self._lock, nl.rtnl(netns) as ipr:
            link = nl.find_link(ipr, netns, interface)
            held = self._attachments.get(key)
            if held is not None:
                if held[0].ifindex == link.index and self._still_attached(ipr, held[0], link):
                    return held[0]
                self._forget(key)
            shard = self._shard_for(link.index, (netns, interface))
            if kind is ProgramKind.XDP:
                attachment = self._attach_xdp(ipr, link, shard, xdp_mode)
            else:
                attachment = self._attach_tc(ipr, link, shard)
            shard.slots[link.index] = (netns, interface)
            shard.users.setdefault(link.index, set()).add(kind)
            self._attachments[key] = (attachment, shard)
            self.store.put(self.owner, attachment.record())
        log.info(
            "attached",
            program=kind.value,
            interface=interface,
            netns=netns,
            mode=attachment.mode,
            fallbacks=[f"{f.mode}: {f.reason}" for f in attachment.fallbacks],
        )
        return attachment

    def _shard_for(self, ifindex: int, where: tuple[str | None, str]) -> _Shard:
        for shard in self._shards:
            if shard.fits(ifindex, where):
                return shard
        defines = {"X0_MAX_KEYS": self.max_keys}
        shard = _Shard(compile_source(IFACE_SOURCES, IFACE_FUNCTIONS, defines))
        self._shards.append(shard)
        return shard

    def _claim(self, key: tuple[str, str | None, str]) -> str | None:
        """The live owner (not this loader) that recorded ``key``, if any."""
        for owner, records in self.store.all().items():
            if owner != self.owner and owner_alive(owner) and any(r.key == key for r in records):
                return owner
        return None

    def _attach_xdp(
        self, ipr: IPRoute, link: nl.Link, shard: _Shard, mode: nl.XdpMode
    ) -> Attachment:
        key = (ProgramKind.XDP.value, link.netns, link.name)
        if link.xdp_prog_id:
            self._clear_or_refuse_xdp(ipr, link, self._claim(key))
        fd = shard.compiled.fds["x0_xdp"]
        fallbacks: list[Fallback] = []
        for candidate in _AUTO_ORDER if mode is nl.XdpMode.AUTO else (mode,):
            if mode is nl.XdpMode.AUTO and candidate is nl.XdpMode.DRV and link.kind == "veth":
                fallbacks.append(Fallback(candidate.value, _VETH_NATIVE_SKIPPED))
                continue
            try:
                nl.xdp_attach(ipr, link, fd, candidate)
            except KernelFeatureError as exc:
                fallbacks.append(Fallback(candidate.value, exc.message))
                continue
            break
        else:
            raise KernelFeatureError(
                f"no XDP mode works on {link.where}: "
                + "; ".join(f"{f.mode}: {f.reason}" for f in fallbacks),
                fix="use mode=auto, or attach the tc program instead",
                interface=link.name,
            )
        now = nl.find_link(ipr, link.netns, link.name, require_up=False)
        return Attachment(
            program=ProgramKind.XDP,
            interface=link.name,
            netns=link.netns,
            ifindex=link.index,
            mode=(now.xdp_mode or candidate).value,
            prog_ids=(now.xdp_prog_id,),
            fallbacks=tuple(fallbacks),
        )

    def _clear_or_refuse_xdp(self, ipr: IPRoute, link: nl.Link, claim: str | None) -> None:
        try:
            name = _sys.prog_info_by_id(link.xdp_prog_id).name
        except _sys.BpfSyscallError:
            name = "?"
        if name.startswith(_XDP_NAME) and claim is None:
            record = AttachmentRecord(
                ProgramKind.XDP.value,
                link.netns,
                link.name,
                link.index,
                link.xdp_mode.value if link.xdp_mode else "",
                (link.xdp_prog_id,),
            )
            remove_recorded(record)
            log.warning("stale_attachment_removed", program="xdp", interface=link.name)
            return
        holder = f"x0tta6bl4 owner {claim}" if claim else "another program"
        raise AttachConflictError(
            f"{link.where} already runs XDP program {name} (id {link.xdp_prog_id}, "
            f"{link.xdp_mode.value if link.xdp_mode else '?'} mode), attached by {holder}",
            fix="detach it first (`x0tta6bl4 ebpf detach` for ours, "
            "`ip link set dev IFACE xdp off` otherwise), or attach tc only",
            interface=link.name,
            netns=link.netns,
            prog_id=link.xdp_prog_id,
        )

    def _attach_tc(self, ipr: IPRoute, link: nl.Link, shard: _Shard) -> Attachment:
        claim = self._claim((ProgramKind.TC.value, link.netns, link.name))
        created = False if nl.clsact_present(ipr, link.index) else nl.clsact_add(ipr, link)
        added: list[nl.Direction] = []
        try:
            for direction in nl.Direction:
                for existing in nl.tc_filters(ipr, link.index, direction):
                    if existing.pref != nl.TC_PREF or existing.handle != nl.TC_HANDLE:
                        continue
                    if existing.name.startswith(PROGRAM_PREFIX) and claim is None:
                        nl.tc_filter_del(ipr, link, direction)
                        log.warning("stale_attachment_removed", program="tc", interface=link.name)
                        continue
                    holder = f"x0tta6bl4 owner {claim}" if claim else "another program"
                    raise AttachConflictError(
                        f"{link.where} has a TC {direction.value} filter at priority "
                        f"{nl.TC_PREF} handle {nl.TC_HANDLE:#x} ({existing.kind} "
                        f"{existing.name or '?'}) held by {holder}",
                        fix="detach it first (`x0tta6bl4 ebpf detach` for ours, "
                        "`tc filter del` otherwise)",
                        interface=link.name,
                        netns=link.netns,
                    )
                fn = f"x0_tc_{direction.value}"
                nl.tc_filter_add(ipr, link, direction, shard.compiled.fds[fn], fn)
                added.append(direction)
        except X0Error:
            for direction in added:
                nl.tc_filter_del(ipr, link, direction)
            if created:
                nl.clsact_del(ipr, link)
            raise
        prog_ids = tuple(_sys.prog_info(shard.compiled.fds[f"x0_tc_{d.value}"]).id for d in added)
        return Attachment(
            program=ProgramKind.TC,
            interface=link.name,
            netns=link.netns,
            ifindex=link.index,
            mode="clsact",
            prog_ids=prog_ids,
            clsact_created=created,
        )

    def _still_attached(self, ipr: IPRoute, attachment: Attachment, link: nl.Link) -> bool:
        if attachment.program is ProgramKind.XDP:
            return link.xdp_prog_id in attachment.prog_ids
        return all(
            any(f.pref == nl.TC_PREF and f.name.startswith(PROGRAM_PREFIX) for f in found)
            for found in (nl.tc_filters(ipr, link.index, d) for d in nl.Direction)
        )

    # -- detach ---------------------------------------------------------------------------

    def detach(
        self, program: ProgramKind | str, interface: str, *, netns: str | None = None
    ) -> bool:
        """Take off what this loader attached there; False when there was nothing (idempotent)."""
        key = (_kind(program).value, netns, interface)
        with self._lock:
            held = self._attachments.get(key)
            if held is None:
                return False
            try:
                remove_recorded(held[0].record())
            finally:
                self._forget(key)
        log.info("detached", program=key[0], interface=interface, netns=netns)
        return True

    def detach_all(self) -> None:
        """Detach everything; failures are logged and the rest still detaches."""
        for program, netns, interface in list(self._attachments):
            try:
                self.detach(program, interface, netns=netns)
            except X0Error as exc:
                log.error("detach_failed", interface=interface, netns=netns, error=str(exc))

    def _forget(self, key: tuple[str, str | None, str]) -> None:
        attachment, shard = self._attachments.pop(key)
        self.store.remove(self.owner, key)
        index = attachment.ifindex
        _clear_keys(shard, attachment.program, index)
        users = shard.users.get(index, set())
        users.discard(attachment.program)
        if not users:
            shard.users.pop(index, None)
            shard.slots.pop(index, None)

    def close(self) -> None:
        """Detach everything and free the compiled programs; idempotent."""
        with self._lock:
            self.detach_all()
            for shard in self._shards:
                shard.compiled.close()
            self._shards.clear()

    # -- reading and listing --------------------------------------------------------------

    def attachments(self) -> list[Attachment]:
        with self._lock:
            return [attachment for attachment, _ in self._attachments.values()]

    def read_counters(self) -> list[tuple[str | None, str, IfaceCount]]:
        """Cumulative counters of every attached interface: (netns, interface, count)."""
        ncpu = _sys.possible_cpus()
        rows = []
        with self._lock:
            shards = [(s, dict(s.slots)) for s in self._shards]
        for shard, slots in shards:
            for kind in ProgramKind:
                fd = shard.compiled.table_fd(kind.counter_map)
                for count in decode_iface(_sys.map_items(fd, 8, 16, per_cpu=True), ncpu):
                    where = slots.get(count.ifindex)
                    if where is not None:
                        rows.append((where[0], where[1], count))
        return rows

    def prog_ids(self) -> list[int]:
        with self._lock:
            return sorted({i for a, _ in self._attachments.values() for i in a.prog_ids})

    def cleanup_stale(self, namespaces: Iterable[str | None] = (None,)) -> list[KernelAttachment]:
        """Remove attachments of dead owners, and unowned ones of ours in ``namespaces``.

        Dead owners' records are cleaned wherever they point; the sweep for
        programs with our name but no record looks only in ``namespaces``.
        """
        removed: list[KernelAttachment] = []
        for owner, records in self.store.all().items():
            if owner == self.owner or owner_alive(owner):
                continue
            for record in records:
                try:
                    if remove_recorded(record):
                        log.warning("stale_attachment_removed", owner=owner, **_fields(record))
                except X0Error as exc:
                    log.error("stale_cleanup_failed", owner=owner, error=str(exc))
            self.store.drop_owner(owner)
        for found in scan(namespaces, self.store):
            if found.owner is not None and found.owner_alive:
                continue
            record = found.record()
            try:
                remove_recorded(record)
            except X0Error as exc:
                log.error("stale_cleanup_failed", error=str(exc), **_fields(record))
                continue
            log.warning("stale_attachment_removed", owner=found.owner, **_fields(record))
            removed.append(found)
        return removed

    def __enter__(self) -> Loader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _kind(program: ProgramKind | str) -> ProgramKind:
    try:
        return ProgramKind(program)
    except ValueError as exc:
        raise ConfigError(
            f"unknown program {program!r}",
            fix=f"use one of {', '.join(k.value for k in ProgramKind)}",
        ) from exc


def _mode(mode: nl.XdpMode | str) -> nl.XdpMode:
    try:
        return nl.XdpMode(mode)
    except ValueError as exc:
        raise ConfigError(
            f"unknown XDP mode {mode!r}",
            fix=f"use one of {', '.join(m.value for m in nl.XdpMode)}",
        ) from exc


def _fields(record: AttachmentRecord) -> dict[str, object]:
    return {"program": record.program, "interface": record.interface, "netns": record.netns}


def _clear_keys(shard: _Shard, kind: ProgramKind, ifindex: int) -> None:
    """Forget an interface's counters, so a later interface with its ifindex starts at 0."""
    table = shard.compiled.bpf[kind.counter_map.encode()]
    for key in [k for k in table if k.ifindex == ifindex]:
        table.pop(key, None)
