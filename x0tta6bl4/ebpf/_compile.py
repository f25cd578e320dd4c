"""Compile and load the C programs of ``x0tta6bl4/bpf`` with bcc; the adapter for bcc.

bcc raises a bare ``Exception`` and prints clang's diagnostics and the
verifier's log to stderr, so both are captured around the call and turned into
:class:`~x0tta6bl4.errors.EbpfError` / :class:`~x0tta6bl4.errors.VerifierError`
carrying that text.  The sources are found through ``importlib.resources`` so a
wheel install works the same as a checkout.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import platform
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from x0tta6bl4 import loggers
from x0tta6bl4.ebpf import _sys
from x0tta6bl4.ebpf._btf import VMLINUX_BTF
from x0tta6bl4.ebpf.programs import BPF_PROG_TYPE_XDP
from x0tta6bl4.errors import (
    DependencyError,
    EbpfError,
    KernelFeatureError,
    PrivilegeError,
    VerifierError,
    X0Error,
)

__all__ = [
    "Compiled",
    "compile_source",
    "missing_capabilities",
    "require_bcc",
    "require_btf",
    "require_headers",
    "require_privileges",
]

log = loggers.ebpf

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

BPF_F_XDP_HAS_FRAGS = 1 << 5

# One compile at a time: clang is memory hungry, and stderr is process-wide.
_compile_lock = threading.Lock()


def require_bcc() -> Any:
    """The ``bcc`` module, or :class:`DependencyError` saying how to get it."""
    try:
        return importlib.import_module("bcc")
    except ImportError as exc:
        raise DependencyError(
            f"bcc is not importable ({exc}); eBPF programs cannot be compiled",
            fix="apt-get install python3-bpfcc (`make run` links it into .venv); "
            "never `pip install bcc`, an unrelated package",
        ) from exc


def missing_capabilities() -> list[str]:
    """Capabilities this process lacks for loading and attaching programs."""
    status = Path("/proc/self/status").read_text()
    eff = next(
        (int(ln.split()[1], 16) for ln in status.splitlines() if ln.startswith("CapEff:")), 0
    )
    missing = [] if eff >> CAP_NET_ADMIN & 1 else ["CAP_NET_ADMIN"]
    if not (eff >> CAP_SYS_ADMIN & 1 or (eff >> CAP_BPF & 1 and eff >> CAP_PERFMON & 1)):
        missing.append("CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN)")
    return missing


def require_privileges() -> None:
    missing = missing_capabilities()
    if missing:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        raise PrivilegeError(
            f"loading eBPF programs needs {', '.join(missing)}, which {who} lacks here",
            fix="run as root (sudo), or grant CAP_NET_ADMIN, CAP_BPF and CAP_PERFMON",
            missing=missing,
        )


def require_headers() -> Path:
    build = Path(f"/lib/modules/{platform.release()}/build")
    if not build.is_dir():
        raise KernelFeatureError(
            f"no kernel headers at {build}: bcc cannot compile the programs",
            fix="apt-get install linux-headers-amd64 and link "
            f"{build} to /usr/src/linux-headers-* (`make run` does)",
            path=str(build),
        )
    return build


def require_btf() -> Path:
    if not VMLINUX_BTF.exists():
        raise KernelFeatureError(
            f"the kernel exposes no BTF at {VMLINUX_BTF}: the tracepoint programs cannot "
            "find struct offsets",
            fix="boot a kernel built with CONFIG_DEBUG_INFO_BTF=y, or leave 'trace' out of "
            "ebpf.programs",
        )
    return VMLINUX_BTF


class _Captured:
    text = ""


@contextmanager
def _capture_stderr(out: _Captured) -> Iterator[None]:
    """Send fd 2 to a temporary file while inside (bcc and clang write there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.text = tmp.read().decode("utf-8", "replace")


@dataclass
class Compiled:
    """One bcc module and the fds of the functions loaded from it."""

    source: str
    bpf: Any
    fds: dict[str, int] = field(default_factory=dict)

    def table_fd(self, name: str) -> int:
        fd: int = self.bpf[name.encode()].get_fd()
        return fd

    def close(self) -> None:
        """Release maps and programs (attached ones live on until detached)."""
        self.bpf.cleanup()


def _source_dir(stack: ExitStack, names: Sequence[str], directory: Path | None) -> Path:
    if directory is None:
        directory = stack.enter_context(resources.as_file(resources.files("x0tta6bl4") / "bpf"))
    for name in names:
        if not (directory / name).is_file():
            raise EbpfError(
                f"eBPF source {name} is missing from the installed package",
                fix="reinstall x0tta6bl4 (package data bpf/*.c)",
            )
    return directory


def compile_source(
    sources: Sequence[str],
    functions: Mapping[str, int],
    defines: Mapping[str, int] | None = None,
    *,
    directory: Path | None = None,
) -> Compiled:
    """Compile ``bpf/<source>`` files into one module and load ``functions`` (name -> type).

    ``directory`` replaces the package's ``bpf/`` (for tests and experiments).

    One module per call: programs compiled together share one clang run.
    Tracepoint functions (``TRACEPOINT_PROBE``) are loaded and attached by bcc
    itself while compiling; pass only XDP and TC functions in ``functions``.
    """
    bcc = require_bcc()
    require_privileges()
    require_headers()
    cflags = [f"-D{key}={value}" for key, value in (defines or {}).items()]
    what = "+".join(sources)
    captured = _Captured()
    with ExitStack() as stack:
        directory = _source_dir(stack, sources, directory)
        cflags.append(f"-I{directory}")
        # bcc takes programs (and rewrites TRACEPOINT_PROBE) only from the main file, so
        # several sources are joined into one text; #line keeps clang's messages exact.
        main: dict[str, bytes] = (
            {"src_file": str(directory / sources[0]).encode()}
            if len(sources) == 1
            else {
                "text": "".join(
                    f'#line 1 "{name}"\n{(directory / name).read_text()}\n' for name in sources
                ).encode()
            }
        )
        with _compile_lock:
            try:
                with _capture_stderr(captured):
                    bpf = bcc.BPF(cflags=cflags, **main)
            except Exception as exc:
                raise _load_error(what, str(exc), captured.text) from exc
            compiled = Compiled(what, bpf)
            for name, prog_type in functions.items():
                try:
                    with _capture_stderr(captured):
                        compiled.fds[name] = _load_function(bcc, bpf, name, prog_type)
                except X0Error:
                    bpf.cleanup()
                    raise
                except Exception as exc:
                    bpf.cleanup()
                    raise _load_error(f"{what}:{name}", str(exc), captured.text) from exc
    if captured.text.strip():
        log.debug("bcc_output", source=what, output=captured.text.strip()[-2000:])
    return compiled


def _load_function(bcc: Any, bpf: Any, name: str, prog_type: int) -> int:
    """Load one compiled function; XDP ones as frags-aware (multi-buffer) programs.

    A veth with a native XDP program that cannot take multi-buffer frames turns
    off GSO on its peer (drivers/net/veth.c ``veth_xdp_set``), and TCP over it
    then runs at a fraction of its speed.  bcc has no way to pass
    ``BPF_F_XDP_HAS_FRAGS``, so its relocated bytecode is loaded here through
    ``bpf(2)`` and handed back to bcc, which closes it in ``cleanup()``.
    """
    if prog_type != BPF_PROG_TYPE_XDP:
        fd: int = bpf.load_func(name.encode(), prog_type).fd
        return fd
    insns = bpf.dump_func(name.encode())
    license: bytes = bcc.libbcc.lib.bpf_module_license(bpf.module)  # restype c_char_p
    try:
        fd = _sys.prog_load(prog_type, insns, license, name, BPF_F_XDP_HAS_FRAGS)
    except _sys.BpfSyscallError as exc:
        log_buf = ctypes.create_string_buffer(1 << 20)
        with suppress(_sys.BpfSyscallError):  # the same refusal, now with the verifier's log
            os.close(_sys.prog_load(prog_type, insns, license, name, BPF_F_XDP_HAS_FRAGS, log_buf))
        raise _load_error(
            name, f"Failed to load BPF program {name}: {exc.strerror}", log_buf.value.decode()
        ) from exc
    bpf.funcs[name.encode()] = bcc.BPF.Function(bpf, name.encode(), fd)
    return fd


def _load_error(what: str, message: str, output: str) -> X0Error:
    output = output.strip()
    if "super-user" in message or "Operation not permitted" in f"{message}\n{output}":
        return PrivilegeError(
            f"loading {what} was refused by the kernel: {message}",
            fix="run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN",
        )
    if "Failed to load BPF program" in message:
        return VerifierError(f"the kernel rejected {what}: {message}", log=output, program=what)
    if "Failed to attach" in message:
        return KernelFeatureError(
            f"attaching {what} failed: {message}",
            fix="check that the tracepoint exists under /sys/kernel/tracing/events",
        )
    if "file not found" in output or "No such file" in output:
        return KernelFeatureError(
            f"compiling {what} failed: a kernel header is missing",
            fix="install the kernel headers (`make run`); clang said:\n" + output[-2000:],
        )
    return EbpfError(
        f"compiling {what} failed: {message}",
        fix="clang said:\n" + (output[-2000:] or "(nothing)"),
        program=what,
    )
