"""Join credentials: issue, verify, and refuse forged, expired and malformed tokens."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from x0tta6bl4.errors import ConfigError, SecurityError
from x0tta6bl4.identity.credentials import (
    issue_token,
    key_id,
    load_or_create_issuer_key,
    load_public_key,
    public_key_hex,
    public_key_path,
    verify_token,
)

NOW = 1_750_000_000


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _token(key: Ed25519PrivateKey, **overrides: object) -> str:
    fields: dict[str, object] = {
        "plan": "FAMILY",
        "nodes": 3,
        "order_id": "ord-1",
        "issued_at": NOW,
        "expires_at": NOW + 30 * 86400,
    }
    fields.update(overrides)
    return issue_token(key, **fields)  # type: ignore[arg-type]


def _reason(exc: pytest.ExceptionInfo[SecurityError]) -> str:
    return str(exc.value.context["reason"])


def test_issued_token_verifies_and_carries_every_field(key: Ed25519PrivateKey) -> None:
    cred = verify_token(_token(key), key.public_key(), now=NOW + 10)
    assert (cred.plan, cred.nodes, cred.order_id) == ("FAMILY", 3, "ord-1")
    assert (cred.issued_at, cred.expires_at) == (NOW, NOW + 30 * 86400)
    assert cred.kid == key_id(key.public_key())
    assert cred.expires.year >= 2025


def test_issuing_is_deterministic_so_redelivery_is_harmless(key: Ed25519PrivateKey) -> None:
    assert _token(key) == _token(key)
    assert _token(key) != _token(key, order_id="ord-2")


def test_surrounding_whitespace_is_tolerated(key: Ed25519PrivateKey) -> None:
    assert verify_token(f"  {_token(key)}\n", key.public_key(), now=NOW).nodes == 3


def test_token_from_another_issuer_is_forged(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(SecurityError, match="signed by key") as exc:
        verify_token(_token(other), key.public_key(), now=NOW)
    assert _reason(exc) == "forged"


def test_edited_payload_is_forged(key: Ed25519PrivateKey) -> None:
    prefix, body, sig = _token(key).split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=="))
    data["nodes"] = 500
    edited = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(SecurityError, match="altered or forged") as exc:
        verify_token(f"{prefix}.{edited}.{sig}", key.public_key(), now=NOW)
    assert _reason(exc) == "forged"


def test_expired_token_is_refused_with_renewal_hint(key: Ed25519PrivateKey) -> None:
    token = _token(key, expires_at=NOW + 60)
    with pytest.raises(SecurityError, match="expired at") as exc:
        verify_token(token, key.public_key(), now=NOW + 60)
    assert _reason(exc) == "expired"
    assert "/start" in exc.value.fix


def test_token_from_the_future_is_refused(key: Ed25519PrivateKey) -> None:
    token = _token(key, issued_at=NOW + 3600, expires_at=NOW + 7200)
    with pytest.raises(SecurityError, match="future") as exc:
        verify_token(token, key.public_key(), now=NOW)
    assert _reason(exc) == "not_yet_valid"


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "three dot-separated parts"),
        ("hello", "three dot-separated parts"),
        ("x0j2.a.b", "three dot-separated parts"),
        ("x0j1.!!!.abc", "base64url"),
        ("x0j1." + "A" * 3000, "short text"),
        ("x0j1.bm90IGpzb24.c2ln", "base64url JSON"),
        ("x0j1.WzFd.c2ln", "not a JSON object"),
        ("x0j1.eyJwbGFuIjoiU09MTyJ9.c2ln", "lacks"),
    ],
)
def test_malformed_tokens_say_what_is_wrong(key: Ed25519PrivateKey, token: str, why: str) -> None:
    with pytest.raises(SecurityError, match=why) as exc:
        verify_token(token, key.public_key(), now=NOW)
    assert _reason(exc) == "malformed"
    assert exc.value.fix


def test_wrong_field_types_are_malformed(key: Ed25519PrivateKey) -> None:
    body = {
        "plan": "SOLO",
        "nodes": True,
        "order_id": "o",
        "issued_at": NOW,
        "expires_at": NOW + 1,
        "kid": key_id(key.public_key()),
    }
    raw = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(SecurityError, match="nodes is not of type int"):
        verify_token(f"x0j1.{raw}.c2ln", key.public_key(), now=NOW)


@pytest.mark.parametrize("bad", [{"nodes": 0}, {"plan": ""}, {"order_id": ""}, {"expires_at": NOW}])
def test_issuer_refuses_nonsense(key: Ed25519PrivateKey, bad: dict[str, object]) -> None:
    with pytest.raises(SecurityError, match="refusing to issue"):
        _token(key, **bad)


def test_issuer_key_is_created_private_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "join.pem"
    first = load_or_create_issuer_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_or_create_issuer_key(path)
    assert public_key_hex(first) == public_key_hex(second)
    pub = public_key_path(path)
    assert pub.read_text().strip() == public_key_hex(first)
    token = _token(first)
    for spec in (public_key_hex(first), pub, path):
        assert verify_token(token, load_public_key(spec), now=NOW).plan == "FAMILY"


def test_bad_key_material_is_a_config_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_or_create_issuer_key(junk)
    with pytest.raises(ConfigError, match="holds no Ed25519 key"):
        load_public_key(junk)
    with pytest.raises(ConfigError, match="neither 64 hex digits"):
        load_public_key(tmp_path / "missing.pub")


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "X0_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "x0tta6bl4", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_node_join_accepts_a_token_of_this_storefront_and_keeps_it(tmp_path: Path) -> None:
    shown = _cli(tmp_path, "bot", "--show-key")
    assert shown.returncode == 0, shown.stderr
    key = load_or_create_issuer_key(tmp_path / "storefront" / "join_key.pem")
    assert shown.stdout.strip() == public_key_hex(key)
    now = int(time.time())
    token = _token(key, issued_at=now, expires_at=now + 86400)

    joined = _cli(tmp_path, "node", "join", token)
    assert joined.returncode == 0, joined.stderr
    assert "join credential accepted" in joined.stdout and "FAMILY" in joined.stdout
    saved = tmp_path / "node" / "join_token"
    assert saved.read_text().strip() == token
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    other = Ed25519PrivateKey.generate()
    explicit = _cli(
        tmp_path, "node", "join", _token(other, issued_at=now, expires_at=now + 60),
        "--issuer-key", public_key_hex(other),
    )  # fmt: skip
    assert explicit.returncode == 0, explicit.stderr


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("forged", "signed by key"),
        ("expired", "expired at"),
        ("malformed", "join token is malformed"),
    ],
)
def test_node_join_refuses_bad_tokens_with_a_fix(tmp_path: Path, which: str, message: str) -> None:
    key = load_or_create_issuer_key(tmp_path / "storefront" / "join_key.pem")
    now = int(time.time())
    token = {
        "forged": _token(Ed25519PrivateKey.generate(), issued_at=now, expires_at=now + 60),
        "expired": _token(key, issued_at=now - 7200, expires_at=now - 3600),
        "malformed": "x0j1.not-a-token",
    }[which]
    result = _cli(tmp_path, "node", "join", token)
    assert result.returncode == 1
    assert message in result.stderr and "fix:" in result.stderr
    assert not (tmp_path / "node" / "join_token").exists()
