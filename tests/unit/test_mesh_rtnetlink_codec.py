"""Encoding and decoding of rtnetlink route messages (no kernel)."""

from __future__ import annotations

import errno
import struct

import pytest

from x0tta6bl4.mesh.rtnetlink import (
    RTM_DELROUTE,
    RTM_NEWROUTE,
    RouteWrite,
    decode_link,
    decode_route,
    encode_write,
    messages,
)


def test_a_replace_decodes_back_to_what_was_written() -> None:
    data = encode_write(RouteWrite("10.255.0.5", 20, "10.128.0.9", 7, "10.255.0.1"), 42, 211, 254)
    ((kind, flags, seq, payload),) = list(messages(data))
    assert (kind, seq) == (RTM_NEWROUTE, 42)
    assert flags & 0x500 == 0x500  # NLM_F_CREATE | NLM_F_REPLACE
    route = decode_route(payload)
    assert (route.dst, route.dst_len, route.gateway, route.oif) == (
        "10.255.0.5",
        32,
        "10.128.0.9",
        7,
    )
    assert (route.metric, route.proto, route.table) == (20, 211, 254)


def test_a_delete_names_metric_protocol_and_table_and_no_next_hop() -> None:
    ((kind, _flags, _seq, payload),) = list(
        messages(encode_write(RouteWrite("10.255.0.5", 10), 1, 211, 1000))
    )
    assert kind == RTM_DELROUTE
    route = decode_route(payload)
    assert (route.dst, route.metric, route.proto, route.table) == ("10.255.0.5", 10, 211, 1000)
    assert route.gateway is None and route.oif is None


def test_messages_split_a_datagram_and_refuse_a_truncated_one() -> None:
    a = encode_write(RouteWrite("10.255.0.1", 10, "10.128.0.1", 2), 1, 211, 254)
    b = encode_write(RouteWrite("10.255.0.2", 10), 2, 211, 254)
    assert [seq for _, _, seq, _ in messages(a + b)] == [1, 2]
    with pytest.raises(OSError) as caught:
        list(messages(a + b[:-4]))
    assert caught.value.errno == errno.EBADMSG


def test_an_ipv6_route_is_refused_not_misread() -> None:
    payload = struct.pack("=BBBBBBBBI", 10, 128, 0, 0, 254, 211, 0, 1, 0)
    with pytest.raises(OSError) as caught:
        decode_route(payload)
    assert caught.value.errno == errno.EAFNOSUPPORT


def test_a_link_message_gives_its_name_and_flags_past_other_attributes() -> None:
    def attr(kind: int, value: bytes) -> bytes:
        return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)

    flags = 0x1 | 0x10000  # IFF_UP | IFF_LOWER_UP
    payload = struct.pack("=BxHiII", 0, 1, 7, flags, 0)
    payload += attr(4, struct.pack("=I", 1500)) + attr(3, b"x0-n3\0")  # MTU, then IFNAME
    assert decode_link(payload) == ("x0-n3", flags)
    assert decode_link(struct.pack("=BxHiII", 0, 1, 7, 0, 0)) == (None, 0)
