"""The routing daemons we compare against, one per namespace of a netns mesh.

* ``babeld`` (1.12, Debian) with its default timers (hello every 4 s), and
  with a fast hello interval;
* BIRD 2 OSPF (point-to-point links, loopback as a stub) with BFD at
  100 ms x 3 on every link.

Each daemon runs in the foreground inside its node's namespace with a config
file in a temporary directory and is stopped by PID.  Routes they install are
ordinary kernel routes (proto ``babel`` / ``bird``), so the same ping stream
and the same faults measure them and us.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from x0tta6bl4.mesh.addressing import LOOPBACK_NET, AddressPlan
from x0tta6bl4.mesh.nsutil import kill_pids, netns_exec

__all__ = ["PEERS", "PeerMesh", "babeld_config", "bird_config"]

PEERS = ("babeld", "babeld_fast", "bird_bfd")
BABELD_FAST_HELLO_S = 0.05
"""The fast babeld variant's hello interval (see docs/mesh.md for why this value)."""


def babeld_config(ifnames: list[str], hello_s: float | None) -> str:
    """babeld.conf: wired links, announce only the node's loopback /32."""
    lines = ["default type wired"]
    if hello_s is not None:
        lines[0] += f" hello-interval {hello_s:g}"
    lines += [f"interface {name}" for name in ifnames]
    lines += [
        f"redistribute local ip {LOOPBACK_NET} ge 32 allow",
        "redistribute local deny",
        "redistribute deny",
    ]
    return "\n".join(lines) + "\n"


def bird_config(router_id: str, log_path: Path) -> str:
    """bird.conf: OSPFv2 on the x0-* links with BFD 100 ms x 3, loopback as stub."""
    return f"""log "{log_path}" {{ warning, error, fatal }};
router id {router_id};
protocol device {{ }}
protocol kernel {{
    ipv4 {{ export where source = RTS_OSPF; import none; }};
}}
protocol bfd {{
    interface "x0*" {{
        min rx interval 100 ms;
        min tx interval 100 ms;
        multiplier 3;
    }};
}}
protocol ospf v2 {{
    ipv4 {{ import all; export none; }};
    area 0 {{
        interface "lo" {{ stub yes; }};
        interface "x0*" {{ type ptp; hello 1; dead 4; bfd yes; }};
    }};
}}
"""


class PeerMesh:
    """One peer daemon per node of a netns mesh; a context manager that stops them by PID."""

    def __init__(self, kind: str, plan: AddressPlan) -> None:
        if kind not in PEERS:
            raise ValueError(f"unknown peer {kind!r}; one of {PEERS}")
        self.kind = kind
        self.plan = plan
        self.binary = shutil.which("bird" if kind == "bird_bfd" else "babeld", path=_SBIN_PATH)
        self._dir = Path(tempfile.mkdtemp(prefix=f"x0-peer-{kind}-"))
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> PeerMesh:
        if self.binary is None:
            raise RuntimeError(f"{self.kind}: daemon not installed (scripts/setup.sh installs it)")
        for node, ns in self.plan.namespaces.items():
            work = self._dir / node
            work.mkdir()
            ifnames = [end.ifname for end in self.plan.ends(node).values()]
            if self.kind == "bird_bfd":
                conf = work / "bird.conf"
                conf.write_text(bird_config(self.plan.loopbacks[node], work / "bird.log"))
                argv = [self.binary, "-f", "-c", str(conf), "-s", str(work / "bird.ctl")]
                argv += ["-P", str(work / "bird.pid")]
            else:
                conf = work / "babeld.conf"
                hello = BABELD_FAST_HELLO_S if self.kind == "babeld_fast" else None
                conf.write_text(babeld_config(ifnames, hello))
                argv = [self.binary, "-c", str(conf), "-I", str(work / "babeld.pid")]
                argv += ["-S", str(work / "babeld.state"), "-L", str(work / "babeld.log")]
            log = (work / "stderr.log").open("wb")
            self._procs.append(
                subprocess.Popen(netns_exec(ns, argv), stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()
        return self

    def ready(self) -> bool:
        """BIRD: every OSPF adjacency is Full and every BFD session Up; babeld: True."""
        if self.kind != "bird_bfd":
            return True
        for node, ns in self.plan.namespaces.items():
            ctl = str(self._dir / node / "bird.ctl")

            def birdc(*command: str, ns: str = ns, ctl: str = ctl) -> str:
                argv = netns_exec(ns, ["birdc", "-s", ctl, *command])
                return subprocess.run(argv, capture_output=True, text=True, check=False).stdout

            out = birdc("show", "ospf", "neighbors")
            bfd = birdc("show", "bfd", "sessions")
            degree = len(self.plan.ends(node))
            if out.count("Full/") != degree or bfd.count(" Up ") != degree:
                return False
        return True

    def alive(self) -> bool:
        return all(proc.poll() is None for proc in self._procs)

    def stop(self) -> None:
        """Stop every daemon by PID and remove the temporary directory."""
        kill_pids([proc.pid for proc in self._procs if proc.poll() is None])
        for proc in self._procs:
            proc.wait(timeout=5)
        self._procs.clear()
        shutil.rmtree(self._dir, ignore_errors=True)

    def flush_routes(self) -> None:
        """Remove routes the daemons left in the kernel, so the next peer starts clean."""
        proto = "bird" if self.kind == "bird_bfd" else "babel"
        for ns in self.plan.namespaces.values():
            subprocess.run(netns_exec(ns, ["ip", "route", "flush", "proto", proto]), check=False)

    def __enter__(self) -> PeerMesh:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self.flush_routes()


_SBIN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
