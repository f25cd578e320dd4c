"""Network namespaces without entering them for a whole process.

A namespace is entered by one thread at a time: :func:`in_netns` runs a
function in a short-lived thread that has called ``setns(2)``, and a
:class:`NetnsWorker` is a long-lived thread that lives inside one namespace
and owns a pyroute2 ``IPRoute`` there.  Sockets created by such a thread stay
bound to its namespace wherever they are used later, so the asyncio loop of an
actor can read a UDP or netlink socket of any namespace while the process
itself never leaves the host namespace.

Namespaces are created the way ``ip netns add`` does it (a bind mount of the
thread's ``ns/net`` under ``/run/netns``), with no fork.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from pyroute2 import IPRoute

from x0tta6bl4.errors import MeshError, PrivilegeError
from x0tta6bl4.mesh.rtnetlink import close_route_sockets

__all__ = [
    "NETNS_DIR",
    "NetnsWorker",
    "create_netns",
    "delete_netns",
    "in_netns",
    "kill_pids",
    "list_netns",
    "netns_exec",
    "netns_exists",
    "pids_in_netns",
    "set_realtime",
    "set_realtime_process",
    "write_sysctl",
]

T = TypeVar("T")

NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_MS_BIND, _MS_REC, _MS_SHARED, _MNT_DETACH = 4096, 16384, 1 << 20, 2
_libc = ctypes.CDLL(None, use_errno=True)


def _os_error(what: str, name: str) -> Exception:
    code = ctypes.get_errno()
    message = f"{what} of network namespace {name} failed: {os.strerror(code)}"
    if code in (errno.EPERM, errno.EACCES):
        return PrivilegeError(message, namespace=name)
    return MeshError(message, fix="check `ip netns list` and the kernel log", namespace=name)


def _path(name: str) -> Path:
    if not name or "/" in name or name in (".", ".."):
        raise MeshError(f"{name!r} is not a valid namespace name", fix="use letters, digits, -_.")
    return NETNS_DIR / name


def _enter(name: str) -> None:
    """Move the calling thread into namespace ``name``."""
    try:
        fd = os.open(_path(name), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise MeshError(
            f"network namespace {name} does not exist", fix="run `x0tta6bl4 mesh up` first"
        ) from None
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            raise _os_error("entering", name)
    finally:
        os.close(fd)


def _run_in_thread(target: Callable[[], T]) -> T:
    result: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            result.append(target())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            failure.append(exc)

    thread = threading.Thread(target=body, name="x0-netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def in_netns(name: str, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` in a fresh thread inside namespace ``name``; return its result.

    Use it for what must happen inside the namespace once: creating a socket
    (it stays bound to the namespace), writing a sysctl.
    """

    def target() -> T:
        _enter(name)
        return fn(*args)

    return _run_in_thread(target)


def create_netns(name: str) -> None:
    """Create a named namespace (like ``ip netns add``); an existing one is an error."""
    path = _path(name)

    def target() -> None:
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        run_dir = str(NETNS_DIR).encode()
        # /run/netns must be a shared mount so the bind mounts below propagate.
        if _libc.mount(b"", run_dir, b"none", _MS_SHARED | _MS_REC, None) != 0:
            if _libc.mount(run_dir, run_dir, b"none", _MS_BIND | _MS_REC, None) != 0:
                raise _os_error("mounting /run/netns for creation", name)
            _libc.mount(b"", run_dir, b"none", _MS_SHARED | _MS_REC, None)
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        except FileExistsError:
            raise MeshError(
                f"network namespace {name} already exists",
                fix="run `x0tta6bl4 mesh clean` to remove leftovers of an earlier run",
                namespace=name,
            ) from None
        except PermissionError as exc:
            raise PrivilegeError(f"cannot create {path}", namespace=name) from exc
        if _libc.unshare(_CLONE_NEWNET) != 0:
            error = _os_error("creation", name)
            path.unlink(missing_ok=True)
            raise error
        own = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
        if _libc.mount(own, str(path).encode(), b"none", _MS_BIND, None) != 0:
            error = _os_error("binding", name)
            path.unlink(missing_ok=True)
            raise error

    _run_in_thread(target)


def delete_netns(name: str) -> bool:
    """Remove a named namespace (like ``ip netns del``); False when it was not there.

    The namespace itself lives on while a process or socket still holds it;
    kill its processes first (:func:`pids_in_netns`).
    """
    path = _path(name)
    if not path.exists():
        return False
    _libc.umount2(str(path).encode(), _MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    except PermissionError as exc:
        raise PrivilegeError(f"cannot remove network namespace {name}", namespace=name) from exc
    return True


def list_netns(prefix: str = "") -> list[str]:
    """Names of the named namespaces starting with ``prefix``, sorted."""
    try:
        return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))
    except FileNotFoundError:
        return []


def netns_exists(name: str) -> bool:
    return _path(name).exists()


def pids_in_netns(names: Iterable[str]) -> dict[int, str]:
    """Processes whose network namespace is one of ``names`` (pid -> namespace name).

    Matches the namespace inode, so a daemon started with ``ip netns exec`` is
    found whatever its name; our own process is never listed.
    """
    inodes: dict[int, str] = {}
    for name in names:
        try:
            inodes[_path(name).stat().st_ino] = name
        except FileNotFoundError:
            continue
    found: dict[int, str] = {}
    if not inodes:
        return found
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            ino = os.stat(entry / "ns" / "net").st_ino
        except OSError:
            continue
        if ino in inodes:
            found[int(entry.name)] = inodes[ino]
    return found


def kill_pids(pids: Iterable[int], grace_s: float = 2.0) -> None:
    """SIGTERM each pid, then SIGKILL the ones still alive after ``grace_s``."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            alive.append(pid)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(pid)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def _alive(pid: int) -> bool:
    try:
        # A zombie child of ours still answers kill(0); reap it if it is one.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def write_sysctl(values: dict[str, str]) -> None:
    """Write ``/proc/sys`` keys (``net.ipv4.ip_forward``) in the calling thread's namespace."""
    for key, value in values.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        try:
            path.write_text(value)
        except PermissionError as exc:
            raise PrivilegeError(f"cannot set sysctl {key}") from exc
        except OSError as exc:
            raise MeshError(f"cannot set sysctl {key}={value}: {exc.strerror}") from exc


def netns_exec(name: str, argv: list[str]) -> list[str]:
    """The argv that runs ``argv`` inside namespace ``name`` (``ip netns exec``)."""
    _path(name)
    return ["ip", "netns", "exec", name, *argv]


def set_realtime(priority: int) -> bool:
    """Give the calling thread SCHED_RR at ``priority`` (1-99); 0 leaves it alone.

    Hellos every 20 ms with failure after 3 misses need a thread that runs on
    time even on a busy host, as BFD daemons do.  Returns False (and changes
    nothing) without the privilege.
    """
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(min(priority, 99)))
    except PermissionError:
        return False
    return True


def set_realtime_process(priority: int) -> int:
    """SCHED_RR at ``priority`` for every thread of this process; returns how many changed.

    One real-time thread is not enough in Python: the event loop needs the
    GIL, and a normal thread of the same process (Ray's own, an executor's)
    that holds it while the host is overloaded would stall the loop (priority
    inversion).  Threads started later inherit the policy of their creator,
    so callers repeat this now and then.
    """
    if priority <= 0:
        return 0
    param = os.sched_param(min(priority, 99))
    changed = 0
    tids = {int(name) for name in os.listdir("/proc/self/task")}
    _realtime_tids.intersection_update(tids)  # forget threads gone (their ids get reused)
    for tid in tids - _realtime_tids:  # a Ray worker has dozens: look at new ones only
        try:
            if os.sched_getscheduler(tid) != os.SCHED_RR:
                os.sched_setscheduler(tid, os.SCHED_RR, param)
                changed += 1
            _realtime_tids.add(tid)
        except (PermissionError, ProcessLookupError):
            continue
    return changed


_realtime_tids: set[int] = set()
"""Threads of this process already switched by :func:`set_realtime_process`."""


_STOP = object()


class NetnsWorker:
    """A thread that lives in one namespace (None: the host's) and owns an ``IPRoute``.

    With ``realtime_priority`` the thread runs SCHED_RR, so route writes of a
    repair are not queued behind other processes on a busy host.

    Every netlink call for that namespace goes through :meth:`submit`, in
    order; the caller never blocks an event loop on netlink (wrap the future
    with ``asyncio.wrap_future``).
    """

    def __init__(self, netns: str | None, realtime_priority: int = 0) -> None:
        self.netns = netns
        self.realtime_priority = realtime_priority
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._main, args=(ready,), name=f"x0-netlink-{netns or 'host'}", daemon=True
        )
        self._thread.start()
        ready.result()

    def _main(self, ready: Future[None]) -> None:
        try:
            if self.netns is not None:
                _enter(self.netns)
            set_realtime(self.realtime_priority)
            ipr = IPRoute()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the constructor
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            while (item := self._queue.get()) is not _STOP:
                fn, future = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(ipr))
                except BaseException as exc:  # noqa: BLE001 - re-raised by the future
                    future.set_exception(exc)
        finally:
            ipr.close()
            close_route_sockets()

    def submit(self, fn: Callable[[IPRoute], T]) -> Future[T]:
        """Queue ``fn(ipr)`` to run in the namespace; returns its future."""
        future: Future[T] = Future()
        if not self._thread.is_alive():
            future.set_exception(MeshError(f"netlink worker of {self.netns} is closed"))
            return future
        self._queue.put((fn, future))
        return future

    def call(self, fn: Callable[[IPRoute], T], timeout_s: float = 30.0) -> T:
        """Run ``fn(ipr)`` in the namespace and wait for it (never from an event loop)."""
        return self.submit(fn).result(timeout=timeout_s)

    def close(self) -> None:
        """Finish queued work and stop the thread; idempotent."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

    def __enter__(self) -> NetnsWorker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
