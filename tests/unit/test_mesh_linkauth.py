"""Hello link keys: signed handshakes, then MACs; re-keying, forgeries and replays."""

from __future__ import annotations

import pytest

from x0tta6bl4.errors import SecurityError
from x0tta6bl4.mesh.security import Keyring, NodeKey, SecureCodec
from x0tta6bl4.mesh.wire import MAC_BYTES, Flags, Hello, Lsa, encode, parse

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def keys() -> dict[str, NodeKey]:
    return {name: NodeKey.generate(name) for name in ("a", "b", "c")}


@pytest.fixture(scope="module")
def keyring(keys: dict[str, NodeKey]) -> Keyring:
    return Keyring({name: key.public() for name, key in keys.items()})


def codec(name: str, keys: dict[str, NodeKey], keyring: Keyring) -> SecureCodec:
    return SecureCodec(keys[name], keyring, wall=lambda: NOW)


def hello(src: str, dst: str, seq: int, ts: float = NOW) -> Hello:
    return Hello(src, seq, ts, dst, 0, 0.0, 1.0)


def deliver(sender: SecureCodec, receiver: SecureCodec, message: Hello) -> Flags:
    """Seal, open and accept one hello (as the node does after its own checks)."""
    data = sender.seal(message)
    opened = receiver.open(data)
    assert isinstance(opened, Hello)
    receiver.accept_hello(opened)
    return parse(data).flags


def reason(excinfo: pytest.ExceptionInfo[SecurityError]) -> str:
    return str(excinfo.value.context["reason"])


def test_two_handshakes_key_the_link_then_hellos_are_macd(
    keys: dict[str, NodeKey], keyring: Keyring
) -> None:
    a, b = codec("a", keys, keyring), codec("b", keys, keyring)
    assert deliver(a, b, hello("a", "b", 1)) == Flags.SIG_ED25519 | Flags.KEY_SHARE
    # b holds a's share and says so: a may MAC, b may not yet (it cannot know a has its).
    assert deliver(b, a, hello("b", "a", 1)) == Flags.SIG_ED25519 | Flags.KEY_SHARE
    assert deliver(a, b, hello("a", "b", 2)) == Flags.MAC
    assert deliver(b, a, hello("b", "a", 2)) == Flags.MAC
    data = a.seal(hello("a", "b", 3))
    assert len(data) == len(encode(hello("a", "b", 3))) + MAC_BYTES
    assert a.links is not None and b.links is not None
    assert a.links.key("b") == b.links.key("a")
    # Another pair's key differs: c cannot check (or make) a-b MACs.
    c = codec("c", keys, keyring)
    deliver(a, c, hello("a", "c", 1))
    deliver(c, a, hello("c", "a", 1))
    assert a.links.key("c") not in (None, a.links.key("b"))
    with pytest.raises(SecurityError) as excinfo:
        c.open(data)
    assert reason(excinfo) == "forged"


def test_forged_and_stale_macd_hellos_are_refused(
    keys: dict[str, NodeKey], keyring: Keyring
) -> None:
    a, b = codec("a", keys, keyring), codec("b", keys, keyring)
    for seq in (1, 2):
        deliver(a, b, hello("a", "b", seq))
        deliver(b, a, hello("b", "a", seq))
    data = a.seal(hello("a", "b", 5))
    assert parse(data).flags == Flags.MAC
    tampered = bytearray(data)
    tampered[20] ^= 0x01  # the timestamp
    with pytest.raises(SecurityError) as excinfo:
        b.open(bytes(tampered))
    assert reason(excinfo) == "forged"
    stripped = encode(hello("a", "b", 5))  # the MAC removed
    with pytest.raises(SecurityError) as excinfo:
        b.open(stripped)
    assert reason(excinfo) == "unsigned"
    old = a.seal(hello("a", "b", 6, ts=NOW - 31.0))
    with pytest.raises(SecurityError) as excinfo:
        b.open(old)
    assert reason(excinfo) == "replayed"


def test_a_restarted_node_rekeys_the_link(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    a, b = codec("a", keys, keyring), codec("b", keys, keyring)
    for seq in (1, 2):
        deliver(a, b, hello("a", "b", seq))
        deliver(b, a, hello("b", "a", seq))
    b2 = codec("b", keys, keyring)  # b's new incarnation: a new share, no keys
    with pytest.raises(SecurityError) as excinfo:
        b2.open(a.seal(hello("a", "b", 3)))
    assert reason(excinfo) == "unsigned"
    assert deliver(b2, a, hello("b", "a", 10)) & Flags.KEY_SHARE
    # a took the new share: back to handshakes until b2 shows it holds a's share.
    assert deliver(a, b2, hello("a", "b", 4)) & Flags.KEY_SHARE
    assert deliver(b2, a, hello("b", "a", 11)) == Flags.MAC
    assert deliver(a, b2, hello("a", "b", 5)) == Flags.MAC


def test_bad_key_shares_and_misplaced_flags(keys: dict[str, NodeKey], keyring: Keyring) -> None:
    a = codec("a", keys, keyring)
    with pytest.raises(SecurityError) as excinfo:
        a.accept_hello(Hello("b", 1, NOW, "a", 0, 0.0, 1.0, bytes(32), bytes(8)))
    assert reason(excinfo) == "forged"  # a low-order point
    lsa = Lsa("a", 1, NOW, ())
    with pytest.raises(SecurityError, match="belong to hellos"):
        parse(encode(lsa, Flags.MAC) + bytes(MAC_BYTES))
    with pytest.raises(SecurityError, match="no signatures"):
        parse(encode(hello("a", "b", 1), Flags.MAC | Flags.SIG_ED25519) + bytes(80))
    no_share = bytearray(encode(hello("a", "b", 1)))
    no_share[4] = Flags.KEY_SHARE  # the flags byte: a share announced, none there
    with pytest.raises(SecurityError, match="truncated"):
        parse(bytes(no_share))


def test_without_hello_macs_every_hello_is_signed(
    keys: dict[str, NodeKey], keyring: Keyring
) -> None:
    a = SecureCodec(keys["a"], keyring, hello_macs=False, wall=lambda: NOW)
    b = SecureCodec(keys["b"], keyring, hello_macs=False, wall=lambda: NOW)
    for seq in (1, 2, 3):
        assert deliver(a, b, hello("a", "b", seq)) == Flags.SIG_ED25519
        assert deliver(b, a, hello("b", "a", seq)) == Flags.SIG_ED25519
