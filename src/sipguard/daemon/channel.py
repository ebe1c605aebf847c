"""The private channel between the parsing process and the enforcer: a socketpair carrying
length-prefixed JSON (4-byte big-endian length, then one UTF-8 JSON object). Never pickle.

Stream framing rather than SOCK_SEQPACKET: a reconcile of a large store is megabytes, more than
one datagram may hold. An oversized frame is read and thrown away in small pieces (bounded
memory), so the stream stays in step and the next request is served.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

HEADER = struct.Struct("!I")
MAX_REQUEST = 16 * 1024 * 1024  # what the enforcer reads from the parser: 200,000 bans fit
MAX_REPLY = 64 * 1024 * 1024  # what the parser reads from the enforcer (a list of the set)
_CHUNK = 64 * 1024


class Oversized(Exception):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes (at most {limit})")
        self.size = size


def send(sock: socket.socket, obj: Any) -> None:
    data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    sock.sendall(HEADER.pack(len(data)) + data)


def _exact(sock: socket.socket, n: int) -> bytes | None:
    """n bytes, or None at a clean EOF before the first; EOFError in the middle of a frame."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            if got == 0:
                return None
            raise EOFError(f"channel closed after {got} of {n} bytes")
        got += k
    return bytes(buf)


def receive(sock: socket.socket, limit: int) -> bytes | None:
    """One frame's payload; None at EOF; Oversized (frame skipped) when longer than `limit`."""
    head = _exact(sock, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > limit:
        left = size
        while left:
            part = _exact(sock, min(left, _CHUNK))
            if part is None:
                raise EOFError("channel closed inside an oversized frame")
            left -= len(part)
        raise Oversized(size, limit)
    if size == 0:
        return b""
    data = _exact(sock, size)
    if data is None:
        raise EOFError("channel closed before the frame body")
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode(data: bytes) -> Any:
    """Strict JSON: NaN/Infinity are refused (json.loads accepts them by default)."""
    return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
