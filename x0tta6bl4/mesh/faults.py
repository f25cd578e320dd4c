"""Reversible faults on a netns mesh, each recorded in a JSON-lines log.

* ``link-down A B``: both veth ends administratively down (carrier loss).
* ``loss A B N``: N % of packets dropped on ingress at both ends by an
  nftables chain in a ``netdev`` table of our own (``x0_faults``) in each
  namespace; the link stays up, so at 100 % the failure is silent.  This
  kernel has no netem, and nftables' ``numgen random`` needs none.
* ``delay A B MS``: ``tc netem`` on both ends; where the kernel lacks netem
  this raises :class:`KernelFeatureError` and changes nothing.
* ``node-crash A``: every link of A down (the owner may also kill A's actor).
* ``partition A,B,...``: 100 % silent loss on every link between the named
  side and the rest.

The log ``<data_dir>/mesh/runs/<run>.faults.jsonl`` gets one line per inject
and per heal; the faults still in force are those injected and not healed, so
any process can heal what another injected.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from x0tta6bl4 import loggers
from x0tta6bl4.errors import InterfaceError, KernelFeatureError, MeshError
from x0tta6bl4.mesh.addressing import LinkEnd
from x0tta6bl4.mesh.nsutil import netns_exec
from x0tta6bl4.mesh.ports import Fault, FaultKind

if TYPE_CHECKING:
    from x0tta6bl4.mesh.netns import NetnsBackend

__all__ = [
    "FAULT_TABLE",
    "ActiveFault",
    "FaultInjector",
    "chain_name",
    "delete_chain_command",
    "loss_ruleset",
    "parse_fault",
]

log = loggers.mesh

FAULT_TABLE = "x0_faults"
"""The nftables ``netdev`` table our loss faults live in, one per namespace."""


def chain_name(fault_id: str, ifname: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{fault_id}_{ifname}")


def loss_ruleset(fault_id: str, ifname: str, percent: float) -> str:
    """nftables text that drops ``percent`` % of what arrives on ``ifname``."""
    if not 0 < percent <= 100:
        raise MeshError(f"loss must be in (0, 100] percent, not {percent:g}", fix="e.g. 30%")
    verdict = "drop" if percent >= 100 else f"numgen random mod 100 < {round(percent)} drop"
    return (
        f"table netdev {FAULT_TABLE} {{\n"
        f"\tchain {chain_name(fault_id, ifname)} {{\n"
        f'\t\ttype filter hook ingress device "{ifname}" priority -500; policy accept;\n'
        f"\t\tcounter {verdict}\n"
        "\t}\n"
        "}\n"
    )


def delete_chain_command(fault_id: str, ifname: str) -> str:
    return f"delete chain netdev {FAULT_TABLE} {chain_name(fault_id, ifname)}\n"


def parse_fault(kind: str, targets: list[str], value: str | float | None = None) -> Fault:
    """Build a :class:`Fault` from CLI/SDK words (``loss A B 30%``, ``delay A B 50ms``)."""
    try:
        fault_kind = FaultKind(kind)
    except ValueError:
        raise MeshError(
            f"unknown fault {kind!r}", fix=f"use one of {', '.join(k.value for k in FaultKind)}"
        ) from None
    if fault_kind is FaultKind.PARTITION and len(targets) == 1:
        targets = [t for t in targets[0].split(",") if t]
    need = {FaultKind.NODE_CRASH: 1, FaultKind.PARTITION: None}.get(fault_kind, 2)
    if (need is not None and len(targets) != need) or not targets:
        raise MeshError(
            f"fault {kind} takes {need or 'one or more'} node name(s), got {len(targets)}",
            fix="e.g. `mesh fault link-down n1 n2`, `mesh fault partition n1,n2`",
        )
    number = 0.0
    if fault_kind in (FaultKind.LOSS, FaultKind.DELAY):
        if value is None:
            raise MeshError(f"fault {kind} needs a value", fix="e.g. `loss n1 n2 100%`")
        text = str(value).strip().lower().removesuffix("%").removesuffix("ms")
        try:
            number = float(text)
        except ValueError:
            raise MeshError(f"{value!r} is not a number", fix="e.g. 100% or 50ms") from None
        if fault_kind is FaultKind.LOSS and not 0 < number <= 100:
            raise MeshError(f"loss must be in (0, 100] percent, not {number:g}", fix="e.g. 30%")
        if fault_kind is FaultKind.DELAY and number <= 0:
            raise MeshError(f"delay must be > 0 ms, not {number:g}", fix="e.g. 50ms")
    return Fault(fault_kind, tuple(targets), number)


@dataclass(frozen=True)
class ActiveFault:
    id: str
    fault: Fault
    injected_unix: float

    def describe(self) -> str:
        unit = {FaultKind.LOSS: "%", FaultKind.DELAY: "ms"}.get(self.fault.kind)
        value = f" {self.fault.value:g}{unit}" if unit else ""
        return f"{self.id}: {self.fault.kind.value} {' '.join(self.fault.targets)}{value}"


class FaultInjector:
    """Injects and heals faults on one netns run; every action goes to the log."""

    def __init__(self, backend: NetnsBackend) -> None:
        self.backend = backend
        self.log_path = backend.fault_log

    # --- the log --------------------------------------------------------------

    def _records(self) -> Iterator[dict[str, Any]]:
        if not self.log_path.exists():
            return
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield json.loads(line)

    def _append(self, record: dict[str, Any]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def active(self) -> list[ActiveFault]:
        """Faults injected and not yet healed, oldest first."""
        open_faults: dict[str, ActiveFault] = {}
        for rec in self._records():
            if rec["op"] == "inject":
                fault = Fault(FaultKind(rec["kind"]), tuple(rec["targets"]), rec["value"])
                open_faults[rec["id"]] = ActiveFault(rec["id"], fault, rec["ts"])
            elif rec["op"] == "heal":
                open_faults.pop(rec["id"], None)
        return list(open_faults.values())

    def history(self) -> list[dict[str, Any]]:
        return list(self._records())

    def _next_id(self) -> str:
        count = sum(1 for rec in self._records() if rec["op"] == "inject")
        return f"f{count + 1}"

    # --- inject / heal ------------------------------------------------------

    def inject(self, fault: Fault) -> str:
        """Apply ``fault``; returns its id (for :meth:`heal`)."""
        fault_id = self._next_id()
        self._apply(fault_id, fault, on=True)
        self._append(
            {
                "op": "inject",
                "id": fault_id,
                "kind": fault.kind.value,
                "targets": list(fault.targets),
                "value": fault.value,
                "ts": time.time(),
            }
        )
        log.info(
            "fault_injected",
            run=self.backend.run_id,
            id=fault_id,
            kind=fault.kind.value,
            targets=list(fault.targets),
            value=fault.value,
        )
        return fault_id

    def heal(self, fault_id: str | None = None) -> list[str]:
        """Undo one fault by id, or every active fault when ``fault_id`` is None."""
        active = self.active()
        chosen = [a for a in active if fault_id is None or a.id == fault_id]
        if fault_id is not None and not chosen:
            raise MeshError(
                f"no active fault {fault_id} in run {self.backend.run_id}",
                fix="see `x0tta6bl4 mesh status` for active faults",
            )
        healed = []
        for item in reversed(chosen):
            self._apply(item.id, item.fault, on=False)
            self._append({"op": "heal", "id": item.id, "ts": time.time()})
            log.info("fault_healed", run=self.backend.run_id, id=item.id)
            healed.append(item.id)
        return healed

    def heal_fault(self, fault: Fault) -> None:
        """Undo the active faults equal to ``fault`` (the Backend protocol's heal)."""
        for item in self.active():
            if item.fault == fault:
                self.heal(item.id)

    # --- mechanics -----------------------------------------------------------

    def _link_ends(self, a: str, b: str) -> tuple[LinkEnd, LinkEnd]:
        plan = self.backend._require_plan()
        ends = plan.ends(a)
        if b not in ends:
            raise MeshError(
                f"no link between {a} and {b} in run {plan.run_id}",
                fix="see `x0tta6bl4 mesh status` for the links",
            )
        return ends[b], plan.ends(b)[a]

    def _cut_links(self, fault: Fault) -> list[tuple[str, str]]:
        plan = self.backend._require_plan()
        if fault.kind is FaultKind.NODE_CRASH:
            (node,) = fault.targets
            self.backend.namespace(node)
            return [(node, peer) for peer in plan.ends(node)]
        side = set(fault.targets)
        for node in side:
            self.backend.namespace(node)
        return [
            (link.a.node, link.b.node)
            for link in plan.links.values()
            if (link.a.node in side) != (link.b.node in side)
        ]

    def _apply(self, fault_id: str, fault: Fault, on: bool) -> None:
        kind = fault.kind
        if kind is FaultKind.LINK_DOWN:
            a, b = fault.targets
            self.backend.set_link(a, b, up=not on)
        elif kind is FaultKind.NODE_CRASH:
            held = self._held_down(exclude=fault_id)
            for a, b in self._cut_links(fault):
                if on or frozenset((a, b)) not in held:
                    self.backend.set_link(a, b, up=not on)
        elif kind is FaultKind.LOSS:
            for end in self._link_ends(*fault.targets):
                self._nft(end, fault_id, fault.value, on)
        elif kind is FaultKind.PARTITION:
            for a, b in self._cut_links(fault):
                for end in self._link_ends(a, b):
                    self._nft(end, fault_id, 100.0, on)
        elif kind is FaultKind.DELAY:
            ends = self._link_ends(*fault.targets)
            for end in ends if on else reversed(ends):
                self._netem(end, fault.value, on)

    def _held_down(self, exclude: str) -> set[frozenset[str]]:
        """Links another active link-down or node-crash fault keeps down."""
        held: set[frozenset[str]] = set()
        for item in self.active():
            if item.id == exclude:
                continue
            if item.fault.kind is FaultKind.LINK_DOWN:
                held.add(frozenset(item.fault.targets))
            elif item.fault.kind is FaultKind.NODE_CRASH:
                held.update(frozenset(pair) for pair in self._cut_links(item.fault))
        return held

    def _run(self, node: str, argv: list[str], stdin: str | None = None) -> str:
        cmd = netns_exec(self.backend.namespace(node), argv)
        try:
            result = subprocess.run(
                cmd, input=stdin, capture_output=True, text=True, check=False, timeout=30
            )
        except FileNotFoundError as exc:
            raise MeshError(f"{argv[0]} is not installed", fix="run `make setup`") from exc
        if result.returncode != 0:
            raise InterfaceError(
                f"`{' '.join(argv)}` in {node} failed: {result.stderr.strip()}",
                node=node,
            )
        return result.stdout

    def _nft(self, end: LinkEnd, fault_id: str, percent: float, on: bool) -> None:
        if on:
            self._run(end.node, ["nft", "-f", "-"], loss_ruleset(fault_id, end.ifname, percent))
            return
        self._run(end.node, ["nft", "-f", "-"], delete_chain_command(fault_id, end.ifname))
        if "chain" not in self._run(end.node, ["nft", "list", "table", "netdev", FAULT_TABLE]):
            self._run(end.node, ["nft", "delete", "table", "netdev", FAULT_TABLE])

    def _netem(self, end: LinkEnd, delay_ms: float, on: bool) -> None:
        if not on:
            self._run(end.node, ["tc", "qdisc", "del", "dev", end.ifname, "root"])
            return
        try:
            self._run(
                end.node,
                [
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    end.ifname,
                    "root",
                    "netem",
                    "delay",
                    f"{delay_ms}ms",
                ],
            )
        except InterfaceError as exc:
            if "unknown" in str(exc).lower():
                raise KernelFeatureError(
                    "the running kernel has no netem qdisc, so delay faults cannot be injected",
                    fix="run `modprobe sch_netem`, or boot a kernel built with "
                    "CONFIG_NET_SCH_NETEM; loss, link-down and partition faults work without it",
                ) from exc
            raise
