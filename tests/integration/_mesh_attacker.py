"""A malicious mesh node, run as its own process inside its namespace by test_mesh_byzantine.

It holds a valid key (an insider), keeps its two real links up with honest
hellos, and meanwhile:

* advertises zero-cost links to nodes it is not connected to, and near-zero
  costs on its real links (to attract traffic);
* forges LSAs in the name of an honest node, signed with its own key;
* replays its own old, validly signed hellos (sequence numbers already seen);
* forges hellos: in a neighbour's name (a made-up MAC, or one made with its own
  link key) and its own with a made-up MAC;
* replays honest nodes' LSAs it captured, after they were superseded;
* sends LSAs stamped far outside the replay window.

Usage: ``ip netns exec <ns> python -m tests.integration._mesh_attacker DATA_DIR RUN NAME``;
runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from x0tta6bl4.config import MeshSettings
from x0tta6bl4.mesh.netns import NetnsBackend
from x0tta6bl4.mesh.node import MeshNodeLogic
from x0tta6bl4.mesh.nsutil import set_realtime_process
from x0tta6bl4.mesh.ports import Route
from x0tta6bl4.mesh.security import SecureCodec
from x0tta6bl4.mesh.service import MonotonicClock
from x0tta6bl4.mesh.transport import LinkSocket, UdpTransport
from x0tta6bl4.mesh.wire import MAC_BYTES, Flags, Hello, Lsa, MsgType, encode, peek

FAKE_COST = 0.001


class _NoRoutes:
    def apply(self, install: Sequence[Route], remove: Sequence[str]) -> None:
        return None

    def installed(self) -> Mapping[str, Route]:
        return {}


class LyingLogic(MeshNodeLogic):
    """Honest hellos, dishonest advertisements."""

    fake: tuple[str, ...] = ()

    def _current_links(self) -> dict[str, float]:
        links = {n: FAKE_COST for n, m in self.monitors.items() if m.up}
        links.update(dict.fromkeys(self.fake, FAKE_COST))
        return links


def forged_hellos(
    codec: SecureCodec, name: str, neighbor: str, ends: Mapping[str, object], seq: int
) -> list[bytes]:
    """Hellos to ``neighbor`` it cannot authenticate: in another neighbour's name (a
    made-up MAC, and one made with its own link key), and its own with a made-up MAC."""
    out = []
    for origin in [n for n in ends if n != neighbor][:1]:
        fake = Hello(origin, seq, time.time(), neighbor, 0, 0.0, 1.0)
        out.append(encode(fake, Flags.MAC) + os.urandom(MAC_BYTES))
        out.append(codec.seal(fake))
    own = Hello(name, seq, time.time(), neighbor, 0, 0.0, 1.0)
    out.append(encode(own, Flags.MAC) + os.urandom(MAC_BYTES))
    return out


async def main(data_dir: Path, run_id: str, name: str) -> None:
    backend = NetnsBackend.attach(data_dir, run_id)
    plan = backend._require_plan()
    ends = plan.ends(name)
    honest = [n for n in plan.namespaces if n != name]
    mesh = MeshSettings()
    # Its own process, scheduled like a MeshNode actor's: a loaded host must not make its
    # real links flap (a node with no confirmed link is not flagged, it is merely absent).
    set_realtime_process(mesh.realtime_priority)
    codec = SecureCodec.from_settings(name, mesh, data_dir)
    own_hellos: list[bytes] = []
    captured: list[bytes] = []
    logic: LyingLogic | None = None

    def on_receive(neighbor: str, payload: bytes, arrived: float | None) -> None:
        if logic is None:
            return
        head = peek(payload)
        if head is not None and head[0] == MsgType.LSA and head[1] != name and len(captured) < 50:
            captured.append(payload)
        logic.receive(neighbor, payload, arrived)

    links = {p: LinkSocket(e.ifname, e.address, e.peer_address) for p, e in ends.items()}
    transport = UdpTransport(None, links, on_receive, mesh.udp_port)

    class Recording:
        def send(self, neighbor: str, payload: bytes) -> None:
            head = peek(payload)
            if head is not None and head[0] == MsgType.HELLO and len(own_hellos) < 10:
                own_hellos.append(payload)
            transport.send(neighbor, payload)

    logic = LyingLogic(name, list(ends), MonotonicClock(), Recording(), _NoRoutes(), codec, mesh)
    logic.fake = tuple(n for n in honest if n not in ends)
    await transport.start()
    started = time.monotonic()
    victim = honest[-1]
    while True:
        transport.poll()
        logic.tick()
        elapsed = time.monotonic() - started
        if elapsed > 1.0 and int(elapsed / mesh.probe_interval_s) % 10 == 0:
            seq = int(time.time() * 1e6)
            forged = codec.seal(Lsa(victim, seq, time.time(), ((name, FAKE_COST),)))
            stale = codec.seal(Lsa(name, seq, time.time() - 10 * mesh.replay_window_s, ()))
            for neighbor in ends:
                transport.send(neighbor, forged)
                transport.send(neighbor, stale)
                for fake in forged_hellos(codec, name, neighbor, ends, seq):
                    transport.send(neighbor, fake)
                for old in own_hellos[:3]:
                    transport.send(neighbor, old)
                if elapsed > 4.0:
                    for old in captured[:5]:
                        transport.send(neighbor, old)
        await asyncio.sleep(mesh.probe_interval_s)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3]))
