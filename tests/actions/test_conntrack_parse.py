"""The ctnetlink attribute walker never crashes on hostile bytes and finds the source."""

from __future__ import annotations

import struct
from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.actions.conntrack import _attrs, _source


def attr(typ: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), typ) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_source_from_nested_tuple():
    ip = attr(1, attr(1, bytes([198, 51, 100, 7])) + attr(2, bytes([10, 0, 0, 1])))
    orig = attr(0x8000 | 1, ip + attr(0x8000 | 2, attr(1, b"\x11")))
    buf = attr(2, b"reply") + orig + attr(18, b"\0\1")
    src, keep = _source(buf, 0, len(buf))
    assert src == ip_address("198.51.100.7")
    assert keep == orig + attr(18, b"\0\1")


@settings(max_examples=100, deadline=None)  # shared CI cores: no flaky deadlines
@given(st.binary(max_size=300))
def test_garbage_never_crashes(data):
    list(_attrs(data, 0, len(data)))
    _src, keep = _source(data, 0, len(data))
    assert len(keep) <= len(data) + 3
