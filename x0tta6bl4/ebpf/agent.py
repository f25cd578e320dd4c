"""The logic of one node's eBPF agent, without Ray: attach, rescan, read, batch.

:class:`EbpfAgentLogic` owns a :class:`~x0tta6bl4.ebpf.loader.Loader` and the
tracepoints.  ``actors/ebpf_agent.py`` wraps it in a Ray actor that calls
:meth:`rescan` and :meth:`collect` on a timer off its event loop.

Every method is idempotent: a failed call may have attached some interfaces,
and the next :meth:`rescan` converges on the configured targets.  One bad
interface never stops the others; its error is kept in :meth:`status`.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.ebpf import _netlink as nl
from x0tta6bl4.ebpf._compile import require_bcc, require_headers, require_privileges
from x0tta6bl4.ebpf._state import DEFAULT_STATE_DIR
from x0tta6bl4.ebpf.collector import BatchMaker, Increment, Reading
from x0tta6bl4.ebpf.loader import Attachment, Loader
from x0tta6bl4.ebpf.names import Names, entity
from x0tta6bl4.ebpf.programs import IfaceCount, ProgramKind
from x0tta6bl4.ebpf.tracing import Tracepoints, drop_reason_name
from x0tta6bl4.errors import InterfaceDownError, InterfaceNotFoundError, X0Error
from x0tta6bl4.telemetry import TelemetryBatch

__all__ = ["AgentConfig", "EbpfAgentLogic", "Target", "build_reading"]

log = loggers.ebpf


@dataclass(frozen=True)
class Target:
    """One interface to watch; ``netns`` None is the agent's own (host) namespace."""

    interface: str
    netns: str | None = None


@dataclass(frozen=True)
class AgentConfig:
    """What one agent attaches; built from :class:`~x0tta6bl4.config.EbpfSettings`."""

    programs: tuple[str, ...] = ("tc", "trace")
    xdp_mode: str = "auto"
    interfaces: tuple[str, ...] = ()
    netns_patterns: tuple[str, ...] = ()
    state_dir: Path = DEFAULT_STATE_DIR
    max_map_entries: int = 4096
    unchanged_resend_s: float = 10.0

    @classmethod
    def from_settings(cls, settings: Any) -> AgentConfig:
        return cls(
            programs=tuple(settings.programs),
            xdp_mode=settings.xdp_mode,
            interfaces=tuple(settings.interfaces),
            netns_patterns=tuple(settings.netns_patterns),
            state_dir=Path(settings.state_dir),
            max_map_entries=settings.max_map_entries,
            unchanged_resend_s=settings.unchanged_resend_s,
        )

    @property
    def interface_programs(self) -> tuple[ProgramKind, ...]:
        return tuple(ProgramKind(p) for p in self.programs if p != "trace")


class EbpfAgentLogic:
    """Attach to the configured targets, and turn map readings into telemetry batches.

    Args:
        config: what to attach.
        source: the ``source`` of every batch (``ebpf:<node>``).
        clock: unix seconds for batch timestamps (injected in tests).
    """

    def __init__(
        self, config: AgentConfig, source: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.source = source
        self.clock = clock
        self.loader = Loader(config.state_dir, max_keys=config.max_map_entries)
        self.tracepoints: Tracepoints | None = None
        self.names = Names()
        self.maker = BatchMaker(source, config.unchanged_resend_s)
        self.errors: dict[str, str] = {}
        self.extra_targets: set[Target] = set()
        self.started = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Clean up stale attachments, load the tracepoints, attach to every target.

        Raises only when nothing can work here (no privilege, no bcc, no headers);
        per-interface problems are reported in :meth:`status`.
        """
        require_bcc()
        require_privileges()
        require_headers()
        namespaces = [None, *self._namespaces()]
        removed = self.loader.cleanup_stale(namespaces)
        if "trace" in self.config.programs and self.tracepoints is None:
            self.tracepoints = Tracepoints(self.config.max_map_entries)
        self.started = True
        self.rescan()
        return {"stale_removed": len(removed), **self.status()}

    def close(self) -> None:
        """Detach everything; idempotent."""
        self.loader.close()
        if self.tracepoints is not None:
            self.tracepoints.close()
            self.tracepoints = None
        self.started = False

    # -- targets --------------------------------------------------------------------------

    def watch(self, targets: Iterable[Target]) -> None:
        """Add targets beyond the configured ones (e.g. a mesh node's interfaces)."""
        self.extra_targets.update(targets)

    def _namespaces(self) -> list[str]:
        if not self.config.netns_patterns:
            return []
        try:
            names = sorted(p.name for p in nl.NETNS_DIR.iterdir())
        except OSError:
            return []
        return [
            n for n in names if any(fnmatch.fnmatchcase(n, p) for p in self.config.netns_patterns)
        ]

    def targets(self) -> list[Target]:
        """Every interface the agent should be attached to right now."""
        wanted = {Target(name) for name in self.config.interfaces} | self.extra_targets
        for netns in self._namespaces():
            try:
                wanted.update(Target(name, netns) for name in nl.link_names(netns) if name != "lo")
            except InterfaceNotFoundError:
                continue  # the namespace went away between listing and opening it
        return sorted(wanted, key=lambda t: (t.netns or "", t.interface))

    def rescan(self) -> dict[str, int]:
        """Attach to new targets, retry failed ones, forget vanished ones."""
        wanted = self.targets()
        wanted_keys = {(p.value, t.netns, t.interface) for t in wanted for p in self._programs()}
        for attachment in self.loader.attachments():
            if attachment.key not in wanted_keys:
                self._run(attachment.key, partial(self._drop, attachment))
        held = {a.key for a in self.loader.attachments()}
        attached = 0
        for target in wanted:
            for program in self._programs():
                key = (program.value, target.netns, target.interface)
                if key in held:
                    continue
                mode = self.config.xdp_mode if program is ProgramKind.XDP else "auto"
                attach = partial(self.loader.attach, program, target.interface, mode)
                attached += self._run(key, partial(attach, netns=target.netns))
        return {"targets": len(wanted), "attached_now": attached}

    def _programs(self) -> tuple[ProgramKind, ...]:
        return self.config.interface_programs

    def _drop(self, attachment: Attachment) -> None:
        self.loader.detach(attachment.program, attachment.interface, netns=attachment.netns)

    def _run(self, key: tuple[str, str | None, str], action: Callable[[], object]) -> int:
        label = f"{key[0]}@{entity(key[1], key[2])}"
        try:
            action()
        except (InterfaceDownError, InterfaceNotFoundError) as exc:
            self._error(label, exc, quiet=True)
            return 0
        except X0Error as exc:
            self._error(label, exc, quiet=False)
            return 0
        self.errors.pop(label, None)
        return 1

    def _error(self, label: str, exc: X0Error, quiet: bool) -> None:
        if self.errors.get(label) != str(exc):
            (log.info if quiet else log.error)("attach_failed", target=label, error=str(exc))
        self.errors[label] = str(exc)

    # -- reading --------------------------------------------------------------------------

    def read(self) -> Reading:
        """One reading of every map, with kernel ids turned into names."""
        attached = [(a.program, a.netns, a.interface, a.ifindex) for a in self.loader.attachments()]
        return build_reading(
            self.clock(), attached, self.loader.read_counters(), self.tracepoints, self.names
        )

    def collect(self) -> tuple[list[TelemetryBatch], list[Increment]]:
        """Read the maps and build this interval's batches and counter increments."""
        return self.maker.make(self.read())

    def status(self) -> dict[str, Any]:
        attachments = self.loader.attachments()
        return {
            "attached": [
                {
                    "program": a.program.value,
                    "target": entity(a.netns, a.interface),
                    "mode": a.mode,
                    "fallbacks": [f"{f.mode}: {f.reason}" for f in a.fallbacks],
                }
                for a in attachments
            ],
            "tracepoints": self.tracepoints is not None,
            "errors": dict(self.errors),
        }


def build_reading(
    ts: float,
    attached: Iterable[tuple[ProgramKind, str | None, str, int]],
    counters: Iterable[tuple[str | None, str, IfaceCount]],
    tracepoints: Tracepoints | None,
    names: Names,
) -> Reading:
    """Name everything read from the kernel.

    Args:
        attached: (program, netns, interface, ifindex) of every attachment.
        counters: (netns, interface, count) rows of the interface maps.
        tracepoints: read for drops and retransmits when given.
        names: resolves namespace inodes and ifindexes of drops.
    """
    hooks: dict[str, list[str]] = {}
    for program, netns, interface, ifindex in attached:
        names.learn(netns, ifindex, interface)
        hook_names = ("xdp",) if program is ProgramKind.XDP else ("tc_ingress", "tc_egress")
        hooks.setdefault(entity(netns, interface), []).extend(hook_names)
    iface = [
        (entity(netns, interface), c.hook, c.l3, c.l4, c.packets, c.bytes)
        for netns, interface, c in counters
    ]
    drops: list[tuple[str, str, int]] = []
    retrans: list[tuple[str, int]] = []
    if tracepoints is not None:
        drop_counts, retrans_counts = tracepoints.read()
        for d in drop_counts:
            netns = names.netns(d.netns_inode)
            where = entity(netns, names.ifname(netns, d.ifindex))
            drops.append((where, drop_reason_name(d.reason), d.drops))
        for r in retrans_counts:
            netns = names.netns(r.netns_inode)
            retrans.append((entity(netns, f"{r.daddr}:{r.dport}"), r.retransmits))
    return Reading(ts=ts, iface=iface, drops=drops, retrans=retrans, hooks=hooks)
