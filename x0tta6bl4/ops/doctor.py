"""Health checks of this machine: what works, what does not, and the fix for each.

Each check returns a :class:`Check`; none raises.  Checks that need root or bcc
report themselves failed with the reason instead of crashing, so ``doctor``
runs anywhere and prints a complete picture.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Check", "run_checks"]

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_BPF = 39
# bcc wants bytes everywhere (str arguments raise a DeprecationWarning).
_TRIVIAL_XDP = b"int x0_pass(struct xdp_md *ctx) { return XDP_PASS; }"
_TRIVIAL_TC = b"int x0_tc(struct __sk_buff *skb) { return 0; }"


@dataclass(frozen=True)
class Check:
    """The outcome of one check; ``fix`` says what to do when ``ok`` is false."""

    name: str
    ok: bool
    required: bool
    detail: str
    fix: str = ""


def run_checks(include_ray: bool = True) -> list[Check]:
    """Run every check in a fixed order (Ray start last: it takes seconds)."""
    checks: list[Callable[[], Check]] = [
        check_privileges,
        check_netns,
        check_bcc_import,
        check_kernel_headers,
        check_bpffs,
        check_tracefs,
        check_bpf_load,
        check_xdp_tc,
        check_ebpf_telemetry,
        check_nftables,
        check_netem,
        check_python_packages,
        check_gpu,
    ]
    if include_ray:
        checks.append(check_ray)
    return [check() for check in checks]


def _capabilities() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def _has_cap(bit: int) -> bool:
    return bool(_capabilities() >> bit & 1)


def check_privileges() -> Check:
    caps = {"CAP_NET_ADMIN": CAP_NET_ADMIN, "CAP_BPF": CAP_BPF, "CAP_SYS_ADMIN": CAP_SYS_ADMIN}
    lacking = [name for name, bit in caps.items() if not _has_cap(bit)]
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    if not lacking:
        return Check("privileges", True, False, f"{who} with CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN")
    return Check(
        "privileges",
        False,
        False,
        f"{who} lacks {', '.join(lacking)}",
        "run as root (sudo) for namespaces, routes and eBPF; the simulator works without",
    )


def check_netns() -> Check:
    name = f"x0doctor{os.getpid()}"
    try:
        from pyroute2 import netns

        netns.create(name)
        netns.remove(name)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return Check(
            "netns",
            False,
            False,
            f"cannot create a network namespace: {exc}",
            "run as root; the mesh falls back to the in-process simulator",
        )
    return Check("netns", True, False, "created and removed a network namespace")


def check_bcc_import() -> Check:
    try:
        importlib.import_module("bcc")
    except ImportError as exc:
        return Check(
            "bcc",
            False,
            False,
            f"cannot import bcc: {exc}",
            "apt-get install python3-bpfcc (then `make run` links it into .venv); "
            "never `pip install bcc`, an unrelated package",
        )
    return Check("bcc", True, False, "Debian's bcc module imports")


def check_kernel_headers() -> Check:
    build = Path(f"/lib/modules/{platform.release()}/build")
    btf = Path("/sys/kernel/btf/vmlinux")
    found = [str(p) for p in (build, btf) if p.exists()]
    if build.exists():
        return Check("kernel headers", True, False, " and ".join(found))
    return Check(
        "kernel headers",
        False,
        False,
        f"{build} is missing" + (f" (BTF at {btf} exists)" if btf.exists() else ""),
        "apt-get install linux-headers-amd64 and link "
        f"{build.parent}/{{build,source}} to /usr/src/linux-headers-* (`make run` does)",
    )


def _mounted(fs_type: str) -> str | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[2] == fs_type:
            return parts[1]
    return None


def check_bpffs() -> Check:
    where = _mounted("bpf")
    if where:
        return Check("bpffs", True, False, f"mounted at {where}")
    return Check(
        "bpffs",
        False,
        False,
        "bpffs is not mounted",
        "mount -t bpf bpf /sys/fs/bpf (`make run` does as root)",
    )


def check_tracefs() -> Check:
    where = _mounted("tracefs")
    if where:
        return Check("tracefs", True, False, f"mounted at {where}")
    return Check(
        "tracefs",
        False,
        False,
        "tracefs is not mounted (tracepoints unavailable)",
        "mount -t tracefs tracefs /sys/kernel/tracing (`make run` does as root)",
    )


def check_bpf_load() -> Check:
    try:
        from bcc import BPF

        bpf = BPF(text=_TRIVIAL_XDP)
        bpf.load_func(b"x0_pass", BPF.XDP)
        bpf.cleanup()
    except Exception as exc:  # noqa: BLE001 - bcc raises bare Exception on load failure
        return Check(
            "bpf load",
            False,
            False,
            f"cannot compile and load a BPF program: {exc}",
            "run as root with kernel headers linked (`make run`)",
        )
    return Check("bpf load", True, False, "compiled and loaded an XDP program with bcc")


def check_xdp_tc() -> Check:
    """Attach XDP (generic) and a TC direct-action filter to a throwaway veth pair."""
    name = f"x0d{os.getpid() % 100000}"
    try:
        from bcc import BPF
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            ipr.link("add", ifname=name, kind="veth", peer=f"{name}p")
            try:
                index = ipr.link_lookup(ifname=name)[0]
                ipr.link("set", index=index, state="up")
                bpf = BPF(text=_TRIVIAL_XDP + b"\n" + _TRIVIAL_TC)
                xdp = bpf.load_func(b"x0_pass", BPF.XDP)
                bpf.attach_xdp(name.encode(), xdp, BPF.XDP_FLAGS_SKB_MODE)
                bpf.remove_xdp(name.encode(), BPF.XDP_FLAGS_SKB_MODE)
                tc = bpf.load_func(b"x0_tc", BPF.SCHED_CLS)
                ipr.tc("add", "clsact", index)
                ipr.tc(
                    "add-filter",
                    "bpf",
                    index,
                    ":1",
                    fd=tc.fd,
                    name=tc.name,
                    parent="ffff:fff2",
                    classid=1,
                    direct_action=True,
                )
                bpf.cleanup()
            finally:
                ipr.link("del", ifname=name)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return Check(
            "xdp + tc",
            False,
            False,
            f"cannot attach XDP/TC programs: {exc}",
            "run as root with bcc and kernel headers (`make run`)",
        )
    return Check("xdp + tc", True, False, "XDP (generic) and TC clsact direct-action attach")


def check_ebpf_telemetry() -> Check:
    """What the eBPF agent's tracepoints need beyond a loadable program."""
    from x0tta6bl4.ebpf.tracing import kernel_offsets, read_drop_reasons
    from x0tta6bl4.errors import X0Error

    try:
        offsets = kernel_offsets()
    except X0Error as exc:
        return Check("ebpf telemetry", False, False, exc.message, exc.fix)
    reasons = read_drop_reasons()
    if not reasons:
        return Check(
            "ebpf telemetry",
            False,
            False,
            "no kfree_skb drop-reason table in tracefs: drops would show as REASON_<n>",
            "mount -t tracefs tracefs /sys/kernel/tracing (`make run` does as root)",
        )
    return Check(
        "ebpf telemetry",
        True,
        False,
        f"{len(offsets)} struct offsets from kernel BTF, {len(reasons)} drop reasons from tracefs",
    )


def check_nftables() -> Check:
    nft = shutil.which("nft")
    if nft is None:
        return Check(
            "nftables",
            False,
            False,
            "nft not found: loss faults unavailable",
            "apt-get install nftables",
        )
    return Check("nftables", True, False, f"{nft} (loss faults via nftables)")


def check_netem() -> Check:
    modules = Path(f"/lib/modules/{platform.release()}")
    built_in = modules / "modules.builtin"
    has_netem = (built_in.exists() and "sch_netem" in built_in.read_text()) or any(
        modules.rglob("sch_netem.ko*")
    )
    if not has_netem:
        has_netem = _tc_probe_netem()
    if has_netem:
        return Check("netem", True, False, "tc netem available: delay and loss faults")
    return Check(
        "netem",
        False,
        False,
        "this kernel has no sch_netem: delay faults unavailable, loss uses nftables",
        "use a kernel with CONFIG_NET_SCH_NETEM for delay faults",
    )


def _tc_probe_netem() -> bool:
    if os.geteuid() != 0 or shutil.which("tc") is None:
        return False
    name = f"x0n{os.getpid() % 100000}"
    try:
        subprocess.run(
            ["ip", "link", "add", name, "type", "veth", "peer", f"{name}p"],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return False
    try:
        probe = subprocess.run(
            ["tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms"],
            capture_output=True,
        )
        return probe.returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def check_python_packages() -> Check:
    wanted = [
        "torch",
        "torch_geometric",
        "pyroute2",
        "httpx",
        "aiogram",
        "pytonlib",
        "prometheus_client",
        "spiffe",
    ]
    lacking = []
    for module in wanted:
        try:
            importlib.import_module(module)
        except ImportError:
            lacking.append(module)
    if lacking:
        return Check(
            "python packages",
            False,
            True,
            f"missing: {', '.join(lacking)}",
            "run `make run` (installs the project with its dependencies into .venv)",
        )
    return Check("python packages", True, True, f"{len(wanted)} runtime packages import")


def check_gpu() -> Check:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Check("gpu", True, False, f"{len(names)} GPU(s): {', '.join(names)}")
    return Check("gpu", True, False, "no GPU visible: training and inference run on the CPU")


def check_ray() -> Check:
    from x0tta6bl4.actors.runtime import ensure_ray, shutdown_ray
    from x0tta6bl4.config import RaySettings
    from x0tta6bl4.errors import ClusterError

    try:
        info = ensure_ray(RaySettings(dashboard=False))
    except ClusterError as exc:
        return Check("ray", False, True, exc.message, exc.fix)
    try:
        detail = f"local Ray started: {info.resources.get('CPU', 0):g} CPU, {info.gpus:g} GPU"
    finally:
        shutdown_ray()
    return Check("ray", True, True, detail)
