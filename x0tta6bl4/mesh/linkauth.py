"""Per-link symmetric keys for hellos: signed X25519 handshakes, then BLAKE2b MACs.

Signing and checking every hello with Ed25519 cost about 11 % of a core per
node at 50 hellos per link and second.  Hellos therefore authenticate with a
key per link instead:

1. Each node (each incarnation) draws an X25519 key pair.  Until a link is
   keyed, its hellos are *handshakes*: signed as before (Ed25519, plus ML-DSA
   with ``mesh.pqc_beacons``) and carrying the sender's public share and the id
   of the share it holds for the other end.  The signature binds the share to
   the node identity in the keyring, so nobody can slip in a share of their own.
2. Both ends derive the same key: BLAKE2b keyed with the X25519 secret over both
   names and both shares.  A node sends MAC'd hellos (16-byte BLAKE2b tag) once it
   holds the other end's share *and* knows the other end holds its own (the id in
   its handshake matches, or a MAC'd hello from it verified).
3. A restarted node has a new share: its handshakes re-key the link; the other
   end falls back to handshakes until the new key is confirmed.

Replays: a MAC'd hello's tag covers its sequence number, timestamp, origin and
destination; the node refuses sequence numbers that are not newer on the link
and timestamps outside the replay window, and keys change with every
incarnation.  The state here changes only for hellos that passed those checks
(:meth:`LinkAuth.accept`), so a replayed old handshake cannot re-key a link.
LSAs stay signed: they are flooded and relayed, so a pairwise key cannot
vouch for their origin.  X25519 is not post-quantum: with ``pqc_beacons`` the
hybrid signatures protect LSAs and handshakes, not the MAC'd hellos between.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from x0tta6bl4.errors import SecurityError
from x0tta6bl4.mesh.wire import KEY_ID_BYTES, MAC_BYTES

__all__ = ["NO_KEY_ID", "LinkAuth", "key_id"]

NO_KEY_ID = bytes(KEY_ID_BYTES)
"""The id a handshake carries when its sender holds no share of the other end."""
_CONTEXT = b"x0tta6bl4 mesh hello key v1"


def key_id(share: bytes) -> bytes:
    """A short public name of a key share (its BLAKE2b digest, 8 bytes)."""
    return hashlib.blake2b(share, digest_size=KEY_ID_BYTES).digest()


@dataclass
class _Peer:
    share: bytes
    key: bytes
    confirmed: bool = False
    """Whether the other end is known to hold our share (it can check our MACs)."""


class LinkAuth:
    """The link keys of node ``name`` (one per neighbour, per incarnation of both)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._private = X25519PrivateKey.generate()
        self.share = self._private.public_key().public_bytes_raw()
        self.share_id = key_id(self.share)
        self._peers: dict[str, _Peer] = {}

    def handshake(self, peer: str) -> tuple[bytes, bytes]:
        """``(our share, id of the share of peer we hold)`` for a handshake to ``peer``."""
        known = self._peers.get(peer)
        return self.share, key_id(known.share) if known is not None else NO_KEY_ID

    def key(self, peer: str) -> bytes | None:
        """The key of the link to ``peer`` (checks its MACs), once we hold its share."""
        known = self._peers.get(peer)
        return known.key if known is not None else None

    def sending_key(self, peer: str) -> bytes | None:
        """The key to MAC our hellos to ``peer`` with, once it can check them."""
        known = self._peers.get(peer)
        return known.key if known is not None and known.confirmed else None

    def accept(self, peer: str, share: bytes, knows: bytes) -> None:
        """Take the share and key id of an authentic, fresh handshake from ``peer``."""
        if share:
            known = self._peers.get(peer)
            if known is None or known.share != share:
                known = self._peers[peer] = _Peer(share, self._derive(peer, share))
            if hmac.compare_digest(knows, self.share_id):
                known.confirmed = True
        elif peer in self._peers:
            # An authentic MAC'd hello: the other end holds our share.
            self._peers[peer].confirmed = True

    def forget(self, peer: str) -> None:
        self._peers.pop(peer, None)

    @staticmethod
    def tag(key: bytes, data: bytes) -> bytes:
        return hashlib.blake2b(data, key=key, digest_size=MAC_BYTES).digest()

    def _derive(self, peer: str, share: bytes) -> bytes:
        try:
            secret = self._private.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError as exc:  # a low-order point: no usable secret
            raise SecurityError(
                f"hello key share of {peer} is not a usable X25519 key", reason="forged"
            ) from exc
        ends = sorted(((self.name, self.share), (peer, share)))
        info = b"".join(len(n.encode()).to_bytes(1, "big") + n.encode() + s for n, s in ends)
        return hashlib.blake2b(_CONTEXT + info, key=secret, digest_size=32).digest()
