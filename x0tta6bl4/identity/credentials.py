"""Signed join credentials: what a buyer receives and ``x0tta6bl4 node join`` accepts.

A credential is a bearer token ``x0j1.<payload>.<signature>``: the payload is
canonical JSON (plan, nodes, order id, issued-at and expiry in Unix seconds,
and the id of the issuer key), base64url without padding; the signature is
Ed25519 over ``x0j1.<payload>``.  Signing is deterministic, so issuing the
same order twice yields the same token and a repeated delivery is harmless.

Every rejection is a :class:`~x0tta6bl4.errors.SecurityError` whose
``context["reason"]`` is ``malformed``, ``forged``, ``expired`` or
``not_yet_valid``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from x0tta6bl4.errors import ConfigError, SecurityError

__all__ = [
    "TOKEN_PREFIX",
    "JoinCredential",
    "issue_token",
    "key_id",
    "load_or_create_issuer_key",
    "load_public_key",
    "public_key_hex",
    "public_key_path",
    "verify_token",
]

TOKEN_PREFIX = "x0j1"
"""Format and version tag; a new format gets a new prefix."""
MAX_TOKEN_CHARS = 2048
"""Longer input is rejected before decoding (tokens are about 250 characters)."""
CLOCK_SKEW_S = 300
"""How far in the future ``issued_at`` may lie before the token is refused."""

_FIELDS: dict[str, type] = {
    "plan": str,
    "nodes": int,
    "order_id": str,
    "issued_at": int,
    "expires_at": int,
    "kid": str,
}


@dataclass(frozen=True)
class JoinCredential:
    """What a join token grants: ``nodes`` mesh nodes of ``plan`` until ``expires_at``."""

    plan: str
    nodes: int
    order_id: str
    issued_at: int
    """Unix seconds."""
    expires_at: int
    """Unix seconds; the token is refused from this moment on."""
    kid: str
    """Id of the issuer key (first 16 hex digits of SHA-256 of the raw public key)."""

    @property
    def expires(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at, tz=UTC)

    @property
    def issued(self) -> datetime:
        return datetime.fromtimestamp(self.issued_at, tz=UTC)


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short stable id of a public key, carried in tokens to name their issuer."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def public_key_hex(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The raw 32-byte public key in hex: what nodes pass as ``--issuer-key``."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return _raw(public).hex()


def issue_token(
    key: Ed25519PrivateKey,
    *,
    plan: str,
    nodes: int,
    order_id: str,
    issued_at: int,
    expires_at: int,
) -> str:
    """Sign a join credential and return its token."""
    if not plan or nodes < 1 or not order_id or expires_at <= issued_at:
        raise SecurityError(
            f"refusing to issue a credential with plan={plan!r} nodes={nodes} "
            f"order={order_id!r} valid {issued_at}..{expires_at}",
            fix="issue for a known plan, at least one node and a positive duration",
        )
    cred = JoinCredential(
        plan=plan,
        nodes=nodes,
        order_id=order_id,
        issued_at=int(issued_at),
        expires_at=int(expires_at),
        kid=key_id(key.public_key()),
    )
    body = json.dumps(asdict(cred), sort_keys=True, separators=(",", ":")).encode()
    signing_input = f"{TOKEN_PREFIX}.{_b64(body)}"
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


def verify_token(
    token: str, issuer: Ed25519PublicKey, *, now: float | None = None
) -> JoinCredential:
    """Check a token's form, signature and validity window; return what it grants.

    Raises:
        SecurityError: with ``context["reason"]`` saying why the token is refused.
    """
    token = token.strip() if isinstance(token, str) else token
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise _malformed("it is not a short text token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise _malformed(f"it must have three dot-separated parts starting with {TOKEN_PREFIX}.")
    try:
        body = _unb64(parts[1])
        signature = _unb64(parts[2])
        data = json.loads(body)
    except (binascii.Error, ValueError) as exc:
        raise _malformed("its payload or signature is not valid base64url JSON") from exc
    cred = _credential(data)
    expected_kid = key_id(issuer)
    if cred.kid != expected_kid:
        raise SecurityError(
            f"join token was signed by key {cred.kid}, not by this issuer ({expected_kid})",
            fix="verify with the seller's public key (--issuer-key), or ask for a new token",
            reason="forged",
        )
    try:
        issuer.verify(signature, f"{parts[0]}.{parts[1]}".encode())
    except InvalidSignature as exc:
        raise SecurityError(
            "join token signature is invalid: the token was altered or forged",
            fix="paste the token exactly as the bot sent it, or ask the seller for a new one",
            reason="forged",
        ) from exc
    now = time.time() if now is None else now
    if now >= cred.expires_at:
        raise SecurityError(
            f"join token for order {cred.order_id} expired at {cred.expires.isoformat()}",
            fix="renew the plan in the Telegram bot (/start) to get a new token",
            reason="expired",
        )
    if cred.issued_at > now + CLOCK_SKEW_S:
        raise SecurityError(
            f"join token was issued in the future ({cred.issued.isoformat()})",
            fix="check this machine's clock (timedatectl), then try again",
            reason="not_yet_valid",
        )
    return cred


def load_or_create_issuer_key(path: Path) -> Ed25519PrivateKey:
    """The issuer's signing key at ``path`` (PEM, mode 0600), created on first use.

    Also writes the public key next to it (:func:`public_key_path`) so a node
    on the same machine can verify without being told the key.  Blocking: call
    it off the event loop.
    """
    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise ConfigError(
                f"join signing key {path} cannot be read: {exc}",
                fix="restore the key from backup; a new key invalidates every issued token",
            ) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                f"join signing key {path} is not an Ed25519 key",
                fix="point storefront.join_key_file at an Ed25519 PEM key",
            )
    else:
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    pub = public_key_path(path)
    if not pub.exists():
        pub.write_text(public_key_hex(key) + "\n", encoding="ascii")
    return key


def public_key_path(private_key_path: Path) -> Path:
    """Where :func:`load_or_create_issuer_key` puts the public half (hex)."""
    return private_key_path.with_suffix(".pub")


def load_public_key(spec: str | Path) -> Ed25519PublicKey:
    """A public key from 64 hex digits, or from a file holding hex or a PEM key.

    Blocking when ``spec`` names a file.
    """
    text = str(spec).strip()
    if not _is_hex_key(text):
        path = Path(text)
        if not path.is_file():
            raise ConfigError(
                f"issuer key {text!r} is neither 64 hex digits nor a readable file",
                fix="pass --issuer-key with the seller's public key (x0tta6bl4 bot --show-key)",
            )
        data = path.read_bytes()
        text = data.decode("ascii", "replace").strip()
        if not _is_hex_key(text):
            return _pem_public(path, data)
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text))


def _pem_public(path: Path, data: bytes) -> Ed25519PublicKey:
    key: object = None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError):
            key = None
    if isinstance(key, Ed25519PublicKey):
        return key
    raise ConfigError(
        f"issuer key file {path} holds no Ed25519 key",
        fix="use the .pub file the storefront wrote next to its join key",
    )


def _credential(data: Any) -> JoinCredential:
    if not isinstance(data, dict):
        raise _malformed("its payload is not a JSON object")
    missing = sorted(set(_FIELDS) - set(data))
    if missing:
        raise _malformed(f"its payload lacks {', '.join(missing)}")
    for name, kind in _FIELDS.items():
        value = data[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _malformed(f"field {name} is not of type {kind.__name__}")
    if data["nodes"] < 1:
        raise _malformed("it grants fewer than one node")
    return JoinCredential(**{name: data[name] for name in _FIELDS})


def _malformed(why: str) -> SecurityError:
    return SecurityError(
        f"join token is malformed: {why}",
        fix=f"copy the whole token from the bot's message; it starts with {TOKEN_PREFIX}.",
        reason="malformed",
    )


def _is_hex_key(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or any(c not in _B64_ALPHABET for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
