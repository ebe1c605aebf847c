"""Sans-I/O reader for the first flight of a TLS connection: the ClientHello and its SNI.

The sensor cannot read SIP inside TLS, but the ClientHello is sent in clear and names the server
the client wants (RFC 6066 server_name). Scanners connect to a bare IP address and send no SNI,
or the address itself; phones configured with the secret domain send the domain.

Wire layout (RFC 8446 / RFC 5246):
    TLSPlaintext  = type(1)=22 legacy_version(2) length(2) fragment      (length <= 2^14)
    Handshake     = msg_type(1)=1 length(3) ClientHello                  (may span records)
    ClientHello   = version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
                    compression_methods<1..2^8-1> extensions<0..2^16-1>
    Extension     = type(2) data<0..2^16-1> ; server_name = 0
    ServerNameList= server_name_list<1..2^16-1> ; ServerName = name_type(1)=0 HostName<1..2^16-1>
"""

from __future__ import annotations

__all__ = ["MAX_HELLO", "TlsIncomplete", "TlsParseError", "client_hello_sni"]

#: The most bytes the sensor buffers while waiting for a whole ClientHello.
MAX_HELLO = 16384 + 5 * 4


class TlsParseError(Exception):
    """Not a TLS ClientHello. `reason` is a short stable code."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TlsIncomplete(TlsParseError):
    """So far a valid prefix: feed more bytes."""

    def __init__(self) -> None:
        super().__init__("incomplete")


def _handshake_bytes(data: bytes) -> bytes:
    """Join the fragments of consecutive handshake records until one whole message is there."""
    if len(data) > MAX_HELLO:
        raise TlsParseError("too_large")
    out = bytearray()
    pos = 0
    while True:
        if len(data) - pos < 5:
            raise TlsIncomplete()
        if data[pos] != 22:
            raise TlsParseError("not_handshake")
        if data[pos + 1] != 3:
            raise TlsParseError("bad_version")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if length == 0 or length > 16384:
            raise TlsParseError("bad_record_length")
        fragment = data[pos + 5 : pos + 5 + length]
        out += fragment
        if len(out) >= 4:
            if out[0] != 1:
                raise TlsParseError("not_client_hello")
            need = 4 + int.from_bytes(out[1:4], "big")
            if need > MAX_HELLO:
                raise TlsParseError("too_large")
            if len(out) >= need:
                return bytes(out[4:need])
        if len(fragment) < length:
            raise TlsIncomplete()
        pos += 5 + length


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise TlsParseError("truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def num(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, len_bytes: int) -> bytes:
        return self.take(self.num(len_bytes))

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


def client_hello_sni(data: bytes) -> str | None:
    """The SNI host name (lower-case) of the ClientHello at the start of `data`, or None.

    Raises TlsIncomplete when `data` is a valid but unfinished prefix, TlsParseError when it is
    not a ClientHello.
    """
    r = _Reader(_handshake_bytes(data))
    r.take(2 + 32)  # legacy_version, random
    if len(r.vector(1)) > 32:
        raise TlsParseError("bad_session_id")
    suites = r.vector(2)
    if not suites or len(suites) % 2:
        raise TlsParseError("bad_cipher_suites")
    if not r.vector(1):
        raise TlsParseError("bad_compression")
    if r.left == 0:
        return None  # no extensions at all
    ext = _Reader(r.vector(2))
    while ext.left:
        kind = ext.num(2)
        body = ext.vector(2)
        if kind != 0:
            continue
        names = _Reader(body)
        names = _Reader(names.vector(2))
        while names.left:
            name_type = names.num(1)
            name = names.vector(2)
            if name_type != 0:
                continue
            if not name or len(name) > 255:
                raise TlsParseError("bad_server_name")
            try:
                text = name.decode("ascii")
            except UnicodeDecodeError:
                raise TlsParseError("bad_server_name") from None
            if not text.isprintable() or " " in text:
                raise TlsParseError("bad_server_name")
            return text.lower().rstrip(".")
        return None
    return None
