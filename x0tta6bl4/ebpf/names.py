"""Turn kernel identities (netns inode, ifindex) into the names people use.

The tracepoint programs see a drop's namespace as an inode number and its
device as an ifindex; the interface counters are keyed by ifindex.  Entities
in telemetry are ``<netns>/<interface>`` with ``host`` for the namespace this
process runs in.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from x0tta6bl4.ebpf import _netlink as nl
from x0tta6bl4.errors import X0Error

__all__ = ["HOST", "Names", "entity"]

HOST = "host"


def entity(netns: str | None, interface: str) -> str:
    """``host/eth0`` or ``x0-ab12-n3/veth1``."""
    return f"{netns or HOST}/{interface}"


class Names:
    """Caches namespace and interface names; refreshes on a miss, at most every ``refresh_s``.

    Args:
        netns_dir: where named namespaces are bind-mounted (``ip netns``).
        refresh_s: the shortest time between two lookups of the same kind.
        clock: monotonic seconds (injected for tests).
    """

    def __init__(
        self,
        netns_dir: Path = nl.NETNS_DIR,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.netns_dir = netns_dir
        self.refresh_s = refresh_s
        self.clock = clock
        self.host_inode = os.stat("/proc/self/ns/net").st_ino
        self._netns: dict[int, str] = {}
        self._netns_at = -1e18
        self._ifnames: dict[str | None, dict[int, str]] = {}
        self._ifnames_at: dict[str | None, float] = {}

    def netns(self, inode: int) -> str | None:
        """The namespace name for an inode: None for this host's, ``netns:<inode>`` if unknown."""
        if inode == self.host_inode or inode == 0:
            return None
        name = self._netns.get(inode)
        if name is None and self.clock() - self._netns_at >= self.refresh_s:
            self._netns_at = self.clock()
            self._netns = self._scan_netns()
            name = self._netns.get(inode)
        return name if name is not None else f"netns:{inode}"

    def _scan_netns(self) -> dict[int, str]:
        found: dict[int, str] = {}
        try:
            entries = list(self.netns_dir.iterdir())
        except OSError:
            return found
        for path in entries:
            try:
                found[path.stat().st_ino] = path.name
            except OSError:
                continue
        return found

    def ifname(self, netns: str | None, ifindex: int) -> str:
        """The interface name, or ``if<index>`` when it cannot be found."""
        if ifindex == 0:
            return "-"
        names = self._ifnames.get(netns, {})
        name = names.get(ifindex)
        if name is None and not (netns or "").startswith("netns:"):
            last = self._ifnames_at.get(netns, -1e18)
            if self.clock() - last >= self.refresh_s:
                self._ifnames_at[netns] = self.clock()
                self._ifnames[netns] = names = self._dump(netns)
                name = names.get(ifindex)
        return name if name is not None else f"if{ifindex}"

    def learn(self, netns: str | None, ifindex: int, ifname: str) -> None:
        self._ifnames.setdefault(netns, {})[ifindex] = ifname

    @staticmethod
    def _dump(netns: str | None) -> dict[int, str]:
        try:
            with nl.rtnl(netns) as ipr:
                return {link.index: link.name for link in nl.links(ipr, netns)}
        except X0Error:
            return {}
