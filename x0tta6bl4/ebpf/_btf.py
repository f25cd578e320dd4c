"""Read struct member offsets from the running kernel's BTF (``/sys/kernel/btf/vmlinux``).

The tracepoint programs follow kernel pointers (``skb->dev->ifindex``).  bcc
compiles them against the installed headers, which need not match the running
kernel (here: 6.1 headers, a 6.18 kernel), so the offsets are read from the
kernel's own type information and passed to the compiler as macros.  Only the
small part of the BTF format needed for that is parsed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from x0tta6bl4.errors import KernelFeatureError

__all__ = ["VMLINUX_BTF", "Btf", "BtfType"]

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
_MEMBER = struct.Struct("<III")

_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
_VOLATILE, _CONST, _RESTRICT, _FUNC, _FUNC_PROTO, _VAR, _DATASEC = 9, 10, 11, 12, 13, 14, 15
_FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 16, 17, 18, 19
_MODIFIERS = {_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG}

# Bytes of kind-specific data after the common 12-byte type header: (fixed, per vlen item).
_TRAILER: dict[int, tuple[int, int]] = {
    _INT: (4, 0),
    _ARRAY: (12, 0),
    _STRUCT: (0, 12),
    _UNION: (0, 12),
    _ENUM: (0, 8),
    _FUNC_PROTO: (0, 8),
    _VAR: (4, 0),
    _DATASEC: (0, 12),
    _DECL_TAG: (4, 0),
    _ENUM64: (0, 12),
}


@dataclass(frozen=True)
class BtfType:
    """One type record: ``ref`` is the size (struct, union, int) or the referenced type id."""

    kind: int
    name: str
    ref: int
    members: tuple[tuple[str, int, int], ...] = ()
    """For structs and unions: (name, type id, bit offset)."""


class Btf:
    """The types of one BTF blob, looked up by name and walked by member path."""

    def __init__(self, data: bytes, source: str = "<bytes>") -> None:
        self.source = source
        if len(data) < _HEADER.size:
            raise self._bad("shorter than its header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HEADER.unpack_from(data)
        )
        if magic != _MAGIC:
            raise self._bad(f"magic {magic:#x} is not {_MAGIC:#x}")
        strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self._types: list[BtfType] = [BtfType(0, "void", 0)]
        self._by_name: dict[tuple[int, str], int] = {}
        self._parse(data[hdr_len + type_off : hdr_len + type_off + type_len], strings)

    @classmethod
    def from_file(cls, path: Path = VMLINUX_BTF) -> Btf:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise KernelFeatureError(
                f"cannot read kernel BTF at {path}: {exc.strerror}",
                fix="boot a kernel built with CONFIG_DEBUG_INFO_BTF=y",
                path=str(path),
            ) from exc
        return cls(data, str(path))

    def _bad(self, why: str) -> KernelFeatureError:
        return KernelFeatureError(
            f"BTF in {self.source} is malformed: {why}",
            fix="boot a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )

    def _parse(self, blob: bytes, strings: bytes) -> None:
        def name_at(offset: int) -> str:
            end = strings.find(b"\0", offset)
            return strings[offset:end].decode("ascii", "replace")

        pos = 0
        while pos + _TYPE.size <= len(blob):
            name_off, info, ref = _TYPE.unpack_from(blob, pos)
            pos += _TYPE.size
            kind, vlen, kind_flag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            fixed, per_item = _TRAILER.get(kind, (0, 0))
            members: tuple[tuple[str, int, int], ...] = ()
            if kind in (_STRUCT, _UNION):
                items = []
                for i in range(vlen):
                    m_name, m_type, m_off = _MEMBER.unpack_from(blob, pos + i * 12)
                    bit_offset = m_off & 0xFFFFFF if kind_flag else m_off
                    items.append((name_at(m_name), m_type, bit_offset))
                members = tuple(items)
            pos += fixed + per_item * vlen
            name = name_at(name_off) if name_off else ""
            if name and kind in (_STRUCT, _UNION, _TYPEDEF):
                self._by_name.setdefault((kind, name), len(self._types))
            self._types.append(BtfType(kind, name, ref, members))
        if pos != len(blob):
            raise self._bad(f"type section ends mid-record ({pos} of {len(blob)} bytes)")

    def struct(self, name: str) -> int:
        """Type id of ``struct name`` (or ``union``, or a typedef of either)."""
        for kind in (_STRUCT, _UNION, _TYPEDEF):
            type_id = self._by_name.get((kind, name))
            if type_id is not None:
                return type_id
        raise KernelFeatureError(
            f"the kernel's BTF has no struct {name}",
            fix="this kernel is not supported by the tracepoint programs; report it",
            struct=name,
        )

    def _resolve(self, type_id: int) -> BtfType:
        """Skip typedefs and qualifiers."""
        btf_type = self._types[type_id]
        while btf_type.kind in _MODIFIERS:
            btf_type = self._types[btf_type.ref]
        return btf_type

    def _find_member(self, type_id: int, name: str) -> tuple[int, int] | None:
        """(type id, bit offset) of ``name``, looking inside anonymous members too."""
        for m_name, m_type, bit_offset in self._resolve(type_id).members:
            if m_name == name:
                return m_type, bit_offset
            if not m_name and self._resolve(m_type).kind in (_STRUCT, _UNION):
                inner = self._find_member(m_type, name)
                if inner is not None:
                    return inner[0], bit_offset + inner[1]
        return None

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of a dotted member path (``"nd_net.net"``) inside a struct.

        Only embedded members are followed; a pointer ends the path.
        """
        type_id = self.struct(struct_name)
        total_bits = 0
        for part in path.split("."):
            found = self._find_member(type_id, part)
            if found is None:
                raise KernelFeatureError(
                    f"struct {struct_name} has no member {path} in the kernel's BTF",
                    fix="this kernel is not supported by the tracepoint programs; report it",
                    struct=struct_name,
                    member=path,
                )
            type_id, bits = found
            total_bits += bits
        if total_bits % 8:
            raise self._bad(f"{struct_name}.{path} is a bit field")
        return total_bits // 8
