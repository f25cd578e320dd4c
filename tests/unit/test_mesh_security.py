"""Wire format and signed datagrams: every kind of bad datagram is refused with its reason."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.errors import ConfigError, DependencyError, SecurityError
from x0tta6bl4.mesh.security import (
    KEYRING_FILE,
    Keyring,
    NodeKey,
    SecureCodec,
    keys_dir,
    load_node_key,
    provision,
)
from x0tta6bl4.mesh.wire import VERSION, Flags, Hello, Lsa, encode, parse

NOW = 1_800_000_000.0


def clock() -> float:
    return NOW


@pytest.fixture(scope="module")
def keys() -> dict[str, NodeKey]:
    return {name: NodeKey.generate(name) for name in ("a", "b", "mallory")}


@pytest.fixture(scope="module")
def keyring(keys: dict[str, NodeKey]) -> Keyring:
    return Keyring({name: keys[name].public() for name in ("a", "b")})


def codec_of(name: str, keys: dict[str, NodeKey], keyring: Keyring, **kw: object) -> SecureCodec:
    return SecureCodec(keys[name], keyring, wall=clock, **kw)  # type: ignore[arg-type]


HELLO = Hello("a", 7, NOW, "b", 5, 0.0042, 0.75)
LSA = Lsa("a", 9, NOW, (("b", 1.0), ("c", 2.5)))


def reason_of(excinfo: pytest.ExceptionInfo[SecurityError]) -> str:
    return str(excinfo.value.context["reason"])


def test_hello_and_lsa_round_trip_unsigned() -> None:
    hello = parse(encode(HELLO)).message
    assert isinstance(hello, Hello)
    assert (hello.origin, hello.dest, hello.seq, hello.echo_seq) == ("a", "b", 7, 5)
    assert hello.echo_delay_s == pytest.approx(0.0042, abs=1e-6)
    assert hello.rx_ratio == pytest.approx(0.75, abs=1e-4)
    assert parse(encode(LSA)).message == LSA


def test_signed_round_trip(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    sender, receiver = codec_of("a", keys, keyring), codec_of("b", keys, keyring)
    data = sender.seal(LSA)
    assert len(data) == len(encode(LSA)) + 64
    assert receiver.open(data) == LSA


def test_unsigned_datagram_is_refused(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    with pytest.raises(SecurityError) as excinfo:
        codec_of("b", keys, keyring).open(encode(HELLO))
    assert reason_of(excinfo) == "unsigned"


def test_unknown_origin_is_forged(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    mallory = codec_of("mallory", keys, keyring)
    data = mallory.seal(Lsa("mallory", 1, NOW, (("a", 0.0),)))
    with pytest.raises(SecurityError) as excinfo:
        codec_of("b", keys, keyring).open(data)
    assert reason_of(excinfo) == "forged"


def test_impersonation_and_tampering_are_forged(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    receiver = codec_of("b", keys, keyring)
    # Mallory signs a message that claims to come from a.
    impostor = SecureCodec(keys["mallory"], keyring, wall=clock)
    with pytest.raises(SecurityError) as excinfo:
        receiver.open(impostor.seal(LSA))
    assert reason_of(excinfo) == "forged"
    # A genuine message with one cost changed in flight.
    data = bytearray(codec_of("a", keys, keyring).seal(LSA))
    body = len(encode(LSA, Flags.SIG_ED25519))
    data[body - 1] ^= 0x01
    with pytest.raises(SecurityError) as excinfo:
        receiver.open(bytes(data))
    assert reason_of(excinfo) == "forged"


def test_timestamp_outside_window_is_replayed(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    old = codec_of("a", keys, keyring).seal(Lsa("a", 9, NOW - 31.0, LSA.links))
    with pytest.raises(SecurityError) as excinfo:
        codec_of("b", keys, keyring, replay_window_s=30.0).open(old)
    assert reason_of(excinfo) == "replayed"
    future = codec_of("a", keys, keyring).seal(Lsa("a", 9, float("nan"), LSA.links))
    with pytest.raises(SecurityError) as excinfo:
        codec_of("b", keys, keyring).open(future)
    assert reason_of(excinfo) == "replayed"


def test_oversized_is_refused_before_parsing(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    with pytest.raises(SecurityError) as excinfo:
        codec_of("b", keys, keyring, max_message_bytes=1024).open(b"\xff" * 1025)
    assert reason_of(excinfo) == "oversized"


def test_sealing_an_oversized_message_says_how_to_fix_it(
    keys: dict[str, NodeKey], keyring: Keyring
) -> None:
    links = tuple((f"node-{i:04d}", 1.0) for i in range(200))
    with pytest.raises(SecurityError, match="max_message_bytes"):
        codec_of("a", keys, keyring, max_message_bytes=1024).seal(Lsa("a", 1, NOW, links))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"X0", "shorter than the header"),
        (b"ZZ" + encode(HELLO)[2:], "bad magic"),
        (encode(HELLO)[:2] + bytes([9]) + encode(HELLO)[3:], "version 9"),
        (encode(HELLO)[:-3], "truncated"),
        (encode(HELLO) + b"\x00", "trailing bytes"),
        (encode(HELLO)[:3] + bytes([7]) + encode(HELLO)[4:], "unknown message type"),
        (encode(HELLO)[:4] + bytes([0x80]) + encode(HELLO)[5:], "unknown flags"),
        (
            struct.pack("!2sBBBQd", b"X0", VERSION, 2, 0, 1, NOW) + b"\x01a" + b"\xff\xff",
            "LSA lists",
        ),
    ],
)
def test_malformed_datagrams(data: bytes, match: str) -> None:
    with pytest.raises(SecurityError, match=match) as excinfo:
        parse(data)
    assert reason_of(excinfo) == "malformed"


def test_byzantine_off_sends_and_accepts_plain_datagrams() -> None:
    plain = SecureCodec(None, None, byzantine=False, wall=clock)
    data = plain.seal(HELLO)
    assert data == encode(HELLO)
    assert plain.open(data) == parse(data).message


def test_byzantine_needs_keys() -> None:
    with pytest.raises(ConfigError, match="keyring"):
        SecureCodec(None, None, byzantine=True)


def test_hybrid_ml_dsa_signatures(keys: dict[str, NodeKey]) -> None:
    a, b = NodeKey.generate("a", pqc=True), NodeKey.generate("b", pqc=True)
    ring = Keyring({"a": a.public(), "b": b.public()})
    sender = SecureCodec(a, ring, pqc=True, wall=clock)
    receiver = SecureCodec(b, ring, pqc=True, wall=clock)
    data = sender.seal(LSA)
    assert len(data) == len(encode(LSA)) + 64 + 2420
    assert receiver.open(data) == LSA
    # A hello on a link not keyed yet is a hybrid-signed handshake with a 40-byte share.
    hello = sender.seal(HELLO)
    assert len(hello) == len(encode(HELLO)) + 40 + 64 + 2420
    assert receiver.open(hello) == parse(hello).message
    # An Ed25519-only datagram does not satisfy a node that requires ML-DSA.
    classic = SecureCodec(a, ring, wall=clock).seal(LSA)
    with pytest.raises(SecurityError) as excinfo:
        receiver.open(classic)
    assert reason_of(excinfo) == "unsigned"
    # A corrupted ML-DSA half is a forgery even though the Ed25519 half is fine.
    broken = bytearray(data)
    broken[-1] ^= 0x01
    with pytest.raises(SecurityError) as excinfo:
        receiver.open(bytes(broken))
    assert reason_of(excinfo) == "forged"


def test_pqc_without_mldsa_key_is_a_config_error(
    keys: dict[str, NodeKey], keyring: Keyring
) -> None:
    with pytest.raises(ConfigError, match="ML-DSA key"):
        SecureCodec(keys["a"], keyring, pqc=True)


def test_provision_creates_private_keys_and_a_shared_keyring(tmp_path: Path) -> None:
    directory = keys_dir(tmp_path)
    ring = provision(directory, ["n0", "n1"])
    assert ring.names == ["n0", "n1"]
    key_file = directory / "n0.key"
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    first = key_file.read_bytes()
    # Provisioning again keeps existing keys.
    again = provision(directory, ["n0", "n1", "n2"])
    assert key_file.read_bytes() == first
    assert again.get("n0") == ring.get("n0")
    assert Keyring.load(directory / KEYRING_FILE).names == ["n0", "n1", "n2"]
    assert load_node_key(directory, "n1").public() == ring.get("n1")
    # Turning PQC on later adds ML-DSA keys to the existing ones.
    hybrid = provision(directory, ["n0"], pqc=True)
    entry = hybrid.get("n0")
    assert entry is not None and entry.mldsa44 is not None
    assert entry.ed25519 == ring.get("n0").ed25519  # type: ignore[union-attr]


def test_codec_from_settings_reads_the_provisioned_keys(tmp_path: Path) -> None:
    provision(keys_dir(tmp_path), ["n0", "n1"])
    mesh = MeshSettings()
    a = SecureCodec.from_settings("n0", mesh, tmp_path)
    b = SecureCodec.from_settings("n1", mesh, tmp_path)
    lsa = Lsa("n0", 1, a.wall(), (("n1", 1.0),))
    assert b.open(a.seal(lsa)) == lsa
    plain = SecureCodec.from_settings("n0", MeshSettings(byzantine=False), tmp_path)
    assert not plain.byzantine


def test_missing_or_corrupt_key_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mesh up"):
        SecureCodec.from_settings("n0", MeshSettings(), tmp_path)
    directory = keys_dir(tmp_path)
    directory.mkdir(parents=True)
    (directory / "n0.key").write_text("{}", encoding="utf-8")
    with pytest.raises(ConfigError, match="malformed"):
        load_node_key(directory, "n0")
    (directory / KEYRING_FILE).write_text('{"version": 99}', encoding="utf-8")
    with pytest.raises(ConfigError, match="version"):
        Keyring.load(directory / KEYRING_FILE)


def test_pqc_on_a_backend_without_ml_dsa_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.backends.openssl.backend import backend

    monkeypatch.setattr(backend, "mldsa_supported", lambda: False)
    with pytest.raises(DependencyError, match="ML-DSA") as excinfo:
        NodeKey.generate("a", pqc=True)
    assert "pqc_beacons=false" in excinfo.value.fix


def test_pqc_needs_room_for_its_signature() -> None:
    key = NodeKey.generate("a", pqc=True)
    ring = Keyring({"a": key.public()})
    with pytest.raises(ConfigError, match="at least 4096"):
        SecureCodec(key, ring, pqc=True, max_message_bytes=2048)
