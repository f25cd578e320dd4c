"""Signed mesh datagrams: node keys, the keyring (trust root), and the checking codec.

Each node owns an Ed25519 key (and, with ``mesh.pqc_beacons``, an ML-DSA-44
key: a hybrid, so breaking one scheme is not enough).  The public halves of
every node form the :class:`Keyring`, the deployment's trust root, written by
:func:`provision` under ``<data_dir>/mesh/keys`` and shared with all nodes.

:class:`SecureCodec` turns messages into datagrams and back.  ``open`` refuses,
with a :class:`~x0tta6bl4.errors.SecurityError` whose ``context["reason"]`` is
one of :data:`REASONS`, datagrams that are oversized (checked before anything
is parsed), malformed, unsigned, forged (unknown origin or bad signature) or
replayed (timestamp outside the window).  Sequence-number replay checks need
per-origin state and live with that state (the link monitor and the LSDB).
Hellos on a keyed link carry a MAC instead of signatures (:mod:`~x0tta6bl4.mesh.linkauth`).
With ``mesh.byzantine`` off, datagrams carry no signatures and are not checked.
"""

from __future__ import annotations

import hmac
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import ConfigError, DependencyError, SecurityError
from x0tta6bl4.mesh.linkauth import LinkAuth
from x0tta6bl4.mesh.wire import (
    ED25519_SIG_BYTES,
    F_ED25519,
    F_KEY_SHARE,
    F_MAC,
    F_MLDSA,
    MLDSA44_SIG_BYTES,
    Hello,
    Message,
    encode,
    parse,
)

__all__ = [
    "KEYRING_FILE",
    "PQC_MIN_MESSAGE_BYTES",
    "REASONS",
    "Keyring",
    "NodeKey",
    "PublicKeys",
    "SecureCodec",
    "keys_dir",
    "load_node_key",
    "provision",
]

REASONS = ("oversized", "malformed", "unsigned", "forged", "replayed", "misdirected")
"""Why a datagram was dropped; every one is counted per node."""
KEYRING_FILE = "keyring.json"
PQC_MIN_MESSAGE_BYTES = 4096
"""Smallest ``mesh.max_message_bytes`` that fits hybrid signatures and an LSA."""
_KEYRING_VERSION = 1


def _mldsa() -> Any:
    """The ML-DSA module of ``cryptography``, or a DependencyError saying why not."""
    try:
        from cryptography.hazmat.backends.openssl.backend import backend
        from cryptography.hazmat.primitives.asymmetric import mldsa
    except ImportError as exc:
        raise DependencyError(
            "mesh.pqc_beacons needs ML-DSA, which this cryptography package lacks",
            fix="pip install -U cryptography (50 ships ML-DSA-44), or set mesh.pqc_beacons=false",
        ) from exc
    if not hasattr(mldsa, "MLDSA44PrivateKey"):
        raise DependencyError(
            "mesh.pqc_beacons needs ML-DSA-44, which this cryptography version lacks",
            fix="pip install -U cryptography (50 ships ML-DSA-44), or set mesh.pqc_beacons=false",
        )
    if not backend.mldsa_supported():
        raise DependencyError(
            f"mesh.pqc_beacons needs ML-DSA, which {backend.openssl_version_text()} lacks",
            fix="install a cryptography wheel built on OpenSSL >= 3.5 or AWS-LC, "
            "or set mesh.pqc_beacons=false",
        )
    return mldsa


@dataclass(frozen=True)
class PublicKeys:
    """A node's public keys: raw Ed25519 (32 bytes) and optional raw ML-DSA-44."""

    ed25519: bytes
    mldsa44: bytes | None = None

    def verifiers(self) -> tuple[Ed25519PublicKey, Any]:
        ed = Ed25519PublicKey.from_public_bytes(self.ed25519)
        pq = _mldsa().MLDSA44PublicKey.from_public_bytes(self.mldsa44) if self.mldsa44 else None
        return ed, pq


class Keyring:
    """Trusted public keys by node name; messages from anyone else are forged."""

    def __init__(self, keys: Mapping[str, PublicKeys] | None = None) -> None:
        self._keys: dict[str, PublicKeys] = dict(keys or {})
        self._verifiers: dict[str, tuple[Ed25519PublicKey, Any]] = {}

    def add(self, name: str, keys: PublicKeys) -> None:
        self._keys[name] = keys
        self._verifiers.pop(name, None)

    def get(self, name: str) -> PublicKeys | None:
        return self._keys.get(name)

    def verifiers(self, name: str) -> tuple[Ed25519PublicKey, Any] | None:
        """Parsed public keys of ``name`` (cached), or None when it is not trusted."""
        cached = self._verifiers.get(name)
        if cached is None and name in self._keys:
            cached = self._verifiers[name] = self._keys[name].verifiers()
        return cached

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def names(self) -> list[str]:
        return sorted(self._keys)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _KEYRING_VERSION,
            "nodes": {
                name: {
                    "ed25519": k.ed25519.hex(),
                    "mldsa44": k.mldsa44.hex() if k.mldsa44 else None,
                }
                for name, k in sorted(self._keys.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Keyring:
        if data.get("version") != _KEYRING_VERSION:
            raise ConfigError(
                f"keyring format version {data.get('version')!r} is not supported",
                fix="provision the mesh keys again (x0tta6bl4 mesh up does it)",
            )
        try:
            return cls(
                {
                    name: PublicKeys(
                        bytes.fromhex(entry["ed25519"]),
                        bytes.fromhex(entry["mldsa44"]) if entry.get("mldsa44") else None,
                    )
                    for name, entry in data["nodes"].items()
                }
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"keyring is malformed: {exc}",
                fix="provision the mesh keys again (x0tta6bl4 mesh up does it)",
            ) from exc

    def save(self, path: Path) -> None:
        """Write atomically (blocking)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read a keyring file (blocking)."""
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(
                f"cannot read the mesh keyring {path}: {exc.strerror}",
                fix="provision the mesh keys (x0tta6bl4 mesh up) or copy keyring.json there",
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"mesh keyring {path} is not JSON: {exc}") from exc


@dataclass(frozen=True)
class NodeKey:
    """A node's private signing keys."""

    name: str
    ed25519: Ed25519PrivateKey
    mldsa44: Any = None

    @classmethod
    def generate(cls, name: str, pqc: bool = False) -> NodeKey:
        return cls(
            name,
            Ed25519PrivateKey.generate(),
            _mldsa().MLDSA44PrivateKey.generate() if pqc else None,
        )

    def public(self) -> PublicKeys:
        pq = self.mldsa44.public_key().public_bytes_raw() if self.mldsa44 is not None else None
        return PublicKeys(self.ed25519.public_key().public_bytes_raw(), pq)

    def save(self, path: Path) -> None:
        """Write the key seeds as JSON, mode 0600 (blocking)."""
        data = {
            "name": self.name,
            "ed25519": self.ed25519.private_bytes_raw().hex(),
            "mldsa44": self.mldsa44.private_bytes_raw().hex() if self.mldsa44 is not None else None,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> NodeKey:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ed = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(data["ed25519"]))
            pq = (
                _mldsa().MLDSA44PrivateKey.from_seed_bytes(bytes.fromhex(data["mldsa44"]))
                if data.get("mldsa44")
                else None
            )
            return cls(str(data["name"]), ed, pq)
        except OSError as exc:
            raise ConfigError(
                f"cannot read mesh node key {path}: {exc.strerror}",
                fix="provision the mesh keys (x0tta6bl4 mesh up)",
            ) from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"mesh node key {path} is malformed: {exc}",
                fix="delete it and provision the mesh keys again",
            ) from exc


def keys_dir(data_dir: Path) -> Path:
    """Where node keys and the keyring live under the data directory."""
    return Path(data_dir) / "mesh" / "keys"


def _key_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.key"


def provision(directory: Path, names: Iterable[str], pqc: bool = False) -> Keyring:
    """Create missing node keys under ``directory`` and (re)write the keyring (blocking).

    Existing keys are kept, so provisioning again is harmless; a node that
    needs ML-DSA but has only Ed25519 gets a new ML-DSA key added.
    """
    keyring = Keyring()
    for name in names:
        path = _key_path(directory, name)
        existing = path.exists()
        key = NodeKey.load(path) if existing else NodeKey.generate(name, pqc)
        changed = not existing
        if pqc and key.mldsa44 is None:
            key = NodeKey(name, key.ed25519, _mldsa().MLDSA44PrivateKey.generate())
            changed = True
        if changed:
            key.save(path)
        keyring.add(name, key.public())
    keyring.save(directory / KEYRING_FILE)
    return keyring


def load_node_key(directory: Path, name: str) -> NodeKey:
    return NodeKey.load(_key_path(directory, name))


class SecureCodec:
    """Seals outgoing messages and opens incoming datagrams for one node.

    Args:
        key: this node's signing keys (None only when ``byzantine`` is off).
        keyring: public keys of every trusted node.
        byzantine: sign and verify; off means plain datagrams, no checks but size and layout.
        pqc: also sign with ML-DSA-44 and require it on every datagram.
        hello_macs: authenticate hellos with per-link keys (:mod:`~x0tta6bl4.mesh.linkauth`);
            false signs them like LSAs.
        max_message_bytes: larger datagrams are refused unread.
        replay_window_s: largest allowed difference between a timestamp and ``wall()``.
        wall: wall-clock seconds (shared across hosts, unlike the monotonic Clock).
    """

    def __init__(
        self,
        key: NodeKey | None,
        keyring: Keyring | None,
        *,
        byzantine: bool = True,
        pqc: bool = False,
        hello_macs: bool = True,
        max_message_bytes: int = 8192,
        replay_window_s: float = 30.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if byzantine and (key is None or keyring is None):
            raise ConfigError(
                "mesh.byzantine needs this node's key and the keyring",
                fix="provision the mesh keys, or set mesh.byzantine=false",
            )
        if pqc and byzantine:
            _mldsa()
            if max_message_bytes < PQC_MIN_MESSAGE_BYTES:
                raise ConfigError(
                    f"mesh.max_message_bytes={max_message_bytes} cannot hold an ML-DSA-44 "
                    f"signature ({MLDSA44_SIG_BYTES} bytes) and a message",
                    fix=f"set mesh.max_message_bytes to at least {PQC_MIN_MESSAGE_BYTES}",
                )
            if key is None or key.mldsa44 is None:
                raise ConfigError(
                    "mesh.pqc_beacons is on but this node has no ML-DSA key",
                    fix="provision the mesh keys again with mesh.pqc_beacons=true",
                )
        self.key = key
        self.keyring = keyring or Keyring()
        self.byzantine = byzantine
        self.pqc = pqc and byzantine
        self.max_message_bytes = max_message_bytes
        self.replay_window_s = replay_window_s
        self.wall = wall
        self._flags = 0
        self.links: LinkAuth | None = None
        if self.byzantine and key is not None:
            self._flags = F_ED25519 | (F_MLDSA if self.pqc else 0)
            if hello_macs:
                self.links = LinkAuth(key.name)

    @classmethod
    def from_settings(cls, name: str, mesh: MeshSettings, data_dir: Path) -> SecureCodec:
        """The codec of node ``name`` with keys from ``<data_dir>/mesh/keys`` (blocking)."""
        if not mesh.byzantine:
            return cls(None, None, byzantine=False, max_message_bytes=mesh.max_message_bytes)
        directory = keys_dir(data_dir)
        return cls(
            load_node_key(directory, name),
            Keyring.load(directory / KEYRING_FILE),
            pqc=mesh.pqc_beacons,
            hello_macs=mesh.hello_macs,
            max_message_bytes=mesh.max_message_bytes,
            replay_window_s=mesh.replay_window_s,
        )

    def seal(self, message: Message) -> bytes:
        """The datagram for ``message``, signed when ``byzantine`` is on; a hello on a
        keyed link is MAC'd instead, one on a link not keyed yet is a signed handshake."""
        if not self.byzantine or self.key is None:
            return encode(message)
        flags = self._flags
        if isinstance(message, Hello) and self.links is not None:
            key = self.links.sending_key(message.dest)
            if key is not None:
                body = encode(message, F_MAC)
                return body + self.links.tag(key, body)
            share, knows = self.links.handshake(message.dest)
            message = replace(message, key_share=share, knows=knows)
            flags |= F_KEY_SHARE
        body = encode(message, flags)
        sig = self.key.ed25519.sign(body)
        if self.pqc:
            sig += self.key.mldsa44.sign(body)
        data = body + sig
        if len(data) > self.max_message_bytes:
            raise SecurityError(
                f"{type(message).__name__} of {message.origin} would be {len(data)} bytes, "
                f"over mesh.max_message_bytes={self.max_message_bytes}",
                fix="raise mesh.max_message_bytes",
                reason="oversized",
            )
        return data

    def open(self, payload: bytes) -> Message:
        """Check and decode one datagram; raises SecurityError with ``context["reason"]``."""
        if len(payload) > self.max_message_bytes:
            raise SecurityError(
                f"datagram of {len(payload)} bytes is over {self.max_message_bytes}",
                reason="oversized",
            )
        parsed = parse(payload)
        message = parsed.message
        if not self.byzantine:
            return message
        flags = parsed.flags
        if flags & F_MAC:
            self._check_mac(message, parsed.signed, parsed.trailer)
            self._check_time(message)
            return message
        if not flags & F_ED25519 or (self.pqc and not flags & F_MLDSA):
            raise SecurityError(
                f"unsigned {type(message).__name__} from {message.origin}", reason="unsigned"
            )
        verifiers = self.keyring.verifiers(message.origin)
        if verifiers is None:
            raise SecurityError(
                f"{type(message).__name__} from unknown node {message.origin}",
                fix="add the node's public key to the keyring",
                reason="forged",
            )
        ed, pq = verifiers
        try:
            ed.verify(parsed.trailer[:ED25519_SIG_BYTES], parsed.signed)
            if flags & F_MLDSA:
                if pq is None:
                    raise InvalidSignature
                pq.verify(parsed.trailer[ED25519_SIG_BYTES:], parsed.signed)
        except (InvalidSignature, UnsupportedAlgorithm) as exc:
            raise SecurityError(
                f"bad signature on {type(message).__name__} from {message.origin}",
                reason="forged",
            ) from exc
        self._check_time(message)
        return message

    def accept_hello(self, hello: Hello) -> None:
        """Learn from a hello that passed every check, the node's sequence check included
        (a key share, or proof the other end holds ours); raises SecurityError (forged)
        for an unusable key share."""
        if self.links is not None:
            self.links.accept(hello.origin, hello.key_share, hello.knows)

    def _check_mac(self, message: Message, signed: bytes, tag: bytes) -> None:
        key = self.links.key(message.origin) if self.links is not None else None
        if key is None:
            raise SecurityError(
                f"MAC'd hello from {message.origin}, whose link key this node does not "
                "hold (yet: its handshake re-keys the link)",
                reason="unsigned",
            )
        if not hmac.compare_digest(self.links.tag(key, signed), tag):  # type: ignore[union-attr]
            raise SecurityError(f"bad MAC on a hello from {message.origin}", reason="forged")

    def _check_time(self, message: Message) -> None:
        skew = abs(self.wall() - message.ts) if math.isfinite(message.ts) else math.inf
        if skew > self.replay_window_s:
            raise SecurityError(
                f"{type(message).__name__} from {message.origin} is {skew:.1f} s off this "
                f"node's clock (window {self.replay_window_s:g} s)",
                fix="synchronise clocks (chrony/NTP) or widen mesh.replay_window_s",
                reason="replayed",
            )
