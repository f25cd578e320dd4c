"""The few ``bpf(2)`` commands we need that bcc does not expose, through ctypes.

Programs and maps are found by id (from netlink, or from a program's map list),
so any process can read the counters of programs another process attached:
the CLI's ``top`` reads the agent's maps this way, and start-up finds stale
programs of a crashed agent.  Struct layouts are the stable UAPI ones.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "BpfSyscallError",
    "MapInfo",
    "ProgInfo",
    "map_fd_by_id",
    "map_info",
    "map_items",
    "possible_cpus",
    "prog_fd_by_id",
    "prog_info",
    "prog_info_by_id",
    "prog_load",
    "run_time_stats",
]

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351}

_MAP_LOOKUP_ELEM = 1
_PROG_LOAD = 5
_MAP_GET_NEXT_KEY = 4
_PROG_GET_FD_BY_ID = 13
_MAP_GET_FD_BY_ID = 14
_OBJ_GET_INFO_BY_FD = 15
_MAP_LOOKUP_BATCH = 24
_ENABLE_STATS = 32
_STATS_RUN_TIME = 0
_ENOTSUPP = 524  # the kernel-internal "operation not supported" some map types return

_PROG_INFO_SIZE = 232
_MAP_INFO_SIZE = 88
_ATTR_SIZE = 128


class BpfSyscallError(OSError):
    """A ``bpf(2)`` call failed; ``errno`` says why. Translated by the callers."""


@dataclass(frozen=True)
class ProgInfo:
    id: int
    type: int
    name: str
    map_ids: tuple[int, ...]
    run_time_ns: int
    run_cnt: int


@dataclass(frozen=True)
class MapInfo:
    id: int
    type: int
    name: str
    key_size: int
    value_size: int
    max_entries: int


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    number = _SYS_BPF.get(platform.machine())
    if number is None:
        raise BpfSyscallError(errno.ENOSYS, f"bpf(2) number unknown on {platform.machine()}")
    ret: int = _libc().syscall(number, cmd, attr, ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise BpfSyscallError(err, os.strerror(err))
    return ret


def _attr(*fields: tuple[int, str, int]) -> ctypes.Array[ctypes.c_char]:
    """A zeroed ``union bpf_attr`` with (offset, struct format char, value) fields set."""
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    for offset, fmt, value in fields:
        ctype = {"I": ctypes.c_uint32, "Q": ctypes.c_uint64}[fmt]
        ctype.from_buffer(attr, offset).value = value
    return attr


def _addr(buffer: ctypes.Array[ctypes.c_char]) -> int:
    return ctypes.addressof(buffer)


def prog_load(
    prog_type: int,
    insns: bytes,
    license: bytes,
    name: str,
    prog_flags: int = 0,
    log: ctypes.Array[ctypes.c_char] | None = None,
) -> int:
    """Load bytecode (map fds already relocated) as a program; a new fd the caller owns.

    ``log``, when given, receives the verifier's output (level 1).
    """
    lic = ctypes.create_string_buffer(license)
    code = ctypes.create_string_buffer(insns, len(insns))
    attr = _attr(
        (0, "I", prog_type),
        (4, "I", len(insns) // 8),
        (8, "Q", _addr(code)),
        (16, "Q", _addr(lic)),
        (24, "I", 1 if log is not None else 0),
        (28, "I", len(log) if log is not None else 0),
        (32, "Q", _addr(log) if log is not None else 0),
        (44, "I", prog_flags),
    )
    ctypes.memmove(_addr(attr) + 48, name.encode()[:15], len(name.encode()[:15]))
    return _bpf(_PROG_LOAD, attr)


def prog_fd_by_id(prog_id: int) -> int:
    """A new fd for the program ``prog_id`` (the caller closes it)."""
    return _bpf(_PROG_GET_FD_BY_ID, _attr((0, "I", prog_id)))


def map_fd_by_id(map_id: int) -> int:
    """A new fd for the map ``map_id`` (the caller closes it)."""
    return _bpf(_MAP_GET_FD_BY_ID, _attr((0, "I", map_id)))


def _u32(buf: ctypes.Array[ctypes.c_char], offset: int) -> int:
    return int.from_bytes(buf.raw[offset : offset + 4], "little")


def _u64(buf: ctypes.Array[ctypes.c_char], offset: int) -> int:
    return int.from_bytes(buf.raw[offset : offset + 8], "little")


def _name(buf: ctypes.Array[ctypes.c_char], offset: int) -> str:
    return buf.raw[offset : offset + 16].split(b"\0", 1)[0].decode("ascii", "replace")


def prog_info(fd: int) -> ProgInfo:
    """Name, maps and run-time statistics of the program behind ``fd``."""
    map_ids = (ctypes.c_uint32 * 64)()
    info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    ctypes.c_uint32.from_buffer(info, 52).value = len(map_ids)
    ctypes.c_uint64.from_buffer(info, 56).value = ctypes.addressof(map_ids)
    _bpf(_OBJ_GET_INFO_BY_FD, _attr((0, "I", fd), (4, "I", _PROG_INFO_SIZE), (8, "Q", _addr(info))))
    count = min(_u32(info, 52), len(map_ids))
    return ProgInfo(
        id=_u32(info, 4),
        type=_u32(info, 0),
        name=_name(info, 64),
        map_ids=tuple(map_ids[:count]),
        run_time_ns=_u64(info, 192),
        run_cnt=_u64(info, 200),
    )


def prog_info_by_id(prog_id: int) -> ProgInfo:
    fd = prog_fd_by_id(prog_id)
    try:
        return prog_info(fd)
    finally:
        os.close(fd)


def map_info(fd: int) -> MapInfo:
    info = ctypes.create_string_buffer(_MAP_INFO_SIZE)
    _bpf(_OBJ_GET_INFO_BY_FD, _attr((0, "I", fd), (4, "I", _MAP_INFO_SIZE), (8, "Q", _addr(info))))
    return MapInfo(
        id=_u32(info, 4),
        type=_u32(info, 0),
        name=_name(info, 24),
        key_size=_u32(info, 8),
        value_size=_u32(info, 12),
        max_entries=_u32(info, 16),
    )


@cache
def possible_cpus() -> int:
    """CPUs a per-CPU map holds a slot for (``/sys/devices/system/cpu/possible``)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    total = 0
    for part in text.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return total


def map_items(fd: int, key_size: int, value_size: int, per_cpu: bool) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a hash map; per-CPU values come as all CPUs' slots in a row.

    Uses one ``BPF_MAP_LOOKUP_BATCH`` call per 256 entries, and falls back to
    key-by-key iteration on kernels or map types without batch support.
    """
    stride = (value_size + 7) // 8 * 8 if per_cpu else value_size
    full_value = stride * possible_cpus() if per_cpu else value_size
    try:
        return _batch_items(fd, key_size, full_value)
    except BpfSyscallError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, _ENOTSUPP):
            raise
    return list(_iter_items(fd, key_size, full_value))


def _batch_items(fd: int, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
    chunk = 256
    keys = ctypes.create_string_buffer(key_size * chunk)
    values = ctypes.create_string_buffer(value_size * chunk)
    in_batch = ctypes.create_string_buffer(max(key_size, 8))
    out_batch = ctypes.create_string_buffer(max(key_size, 8))
    items: list[tuple[bytes, bytes]] = []
    first = True
    while True:
        attr = _attr(
            (0, "Q", 0 if first else _addr(in_batch)),
            (8, "Q", _addr(out_batch)),
            (16, "Q", _addr(keys)),
            (24, "Q", _addr(values)),
            (32, "I", chunk),
            (36, "I", fd),
        )
        done = False
        try:
            _bpf(_MAP_LOOKUP_BATCH, attr)
        except BpfSyscallError as exc:
            if exc.errno != errno.ENOENT:
                raise
            done = True
        count = _u32(attr, 32)
        raw_keys, raw_values = keys.raw, values.raw
        for i in range(count):
            items.append(
                (
                    raw_keys[i * key_size : (i + 1) * key_size],
                    raw_values[i * value_size : (i + 1) * value_size],
                )
            )
        if done:
            return items
        ctypes.memmove(in_batch, out_batch, len(out_batch))
        first = False


def _iter_items(fd: int, key_size: int, value_size: int) -> Iterator[tuple[bytes, bytes]]:
    key = ctypes.create_string_buffer(key_size)
    next_key = ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(value_size)
    first = True
    while True:
        try:
            _bpf(
                _MAP_GET_NEXT_KEY,
                _attr(
                    (0, "I", fd), (8, "Q", 0 if first else _addr(key)), (16, "Q", _addr(next_key))
                ),
            )
        except BpfSyscallError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        first = False
        ctypes.memmove(key, next_key, key_size)
        try:
            _bpf(
                _MAP_LOOKUP_ELEM, _attr((0, "I", fd), (8, "Q", _addr(key)), (16, "Q", _addr(value)))
            )
        except BpfSyscallError as exc:
            if exc.errno == errno.ENOENT:  # deleted between the two calls
                continue
            raise
        yield key.raw, value.raw


@contextmanager
def run_time_stats() -> Iterator[None]:
    """Make the kernel account run time and count of every BPF program while inside.

    ``BPF_ENABLE_STATS`` keeps accounting on for as long as the returned fd is open.
    """
    fd = _bpf(_ENABLE_STATS, _attr((0, "I", _STATS_RUN_TIME)))
    try:
        yield
    finally:
        os.close(fd)
