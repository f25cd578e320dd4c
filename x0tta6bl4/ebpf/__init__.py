"""eBPF observability: counting programs on interfaces, drop and retransmit tracepoints.

The C programs live in ``x0tta6bl4/bpf`` and are compiled by bcc at load time.
The public surface:

- :class:`Loader`: ``attach(program, interface, mode="auto", netns=None)``,
  ``detach``, ``attachments``, ``cleanup_stale``; :func:`scan` lists our
  programs on a host whoever attached them.
- :class:`Tracepoints`: ``skb:kfree_skb`` drops by reason and interface,
  ``tcp:tcp_retransmit_skb`` by peer.
- :class:`EbpfAgentLogic`: one node's agent without Ray (attach, rescan,
  read, batch); ``x0tta6bl4.actors.ebpf_agent`` runs it as an actor.

Library code; it never imports Ray.
"""

from __future__ import annotations

from x0tta6bl4.ebpf._netlink import XdpMode
from x0tta6bl4.ebpf.agent import AgentConfig, EbpfAgentLogic, Target
from x0tta6bl4.ebpf.collector import BatchMaker, Increment, Reading
from x0tta6bl4.ebpf.inventory import KernelAttachment, read_found, scan
from x0tta6bl4.ebpf.loader import Attachment, Fallback, Loader
from x0tta6bl4.ebpf.programs import ProgramKind
from x0tta6bl4.ebpf.tracing import Tracepoints, read_drop_reasons

__all__ = [
    "AgentConfig",
    "Attachment",
    "BatchMaker",
    "EbpfAgentLogic",
    "Fallback",
    "Increment",
    "KernelAttachment",
    "Loader",
    "ProgramKind",
    "Reading",
    "Target",
    "Tracepoints",
    "XdpMode",
    "read_drop_reasons",
    "read_found",
    "scan",
]
