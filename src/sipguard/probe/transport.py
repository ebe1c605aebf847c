"""Socket adapters: the only part of the SIP probe that touches the network.

`Transport` is the small interface the checks use: `send(bytes)` and `recv(timeout)` returning
one whole SIP message or None. UDP keeps one connected socket (one source port, as a phone
would); TCP and TLS cut the stream with the parser's `StreamFramer`. Nothing here decides
anything: bounds and the record of what was sent live in `ledger.Ledger`.
"""

from __future__ import annotations

import select
import socket
import ssl
from typing import Protocol

from sipguard.core.sip import SipParseError, StreamFramer

__all__ = ["TcpTransport", "TlsTransport", "Transport", "UdpTransport", "open_transport"]

MAX_DATAGRAM = 65535


class Transport(Protocol):
    name: str  # "udp", "tcp" or "tls": goes into the Via header
    local: tuple[str, int]

    def send(self, data: bytes) -> None: ...

    def recv(self, timeout: float) -> bytes | None: ...

    def close(self) -> None: ...


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class UdpTransport:
    name = "udp"

    def __init__(self, host: str, port: int, bind: str = "") -> None:
        self.sock = socket.socket(_family(host), socket.SOCK_DGRAM)
        if bind:
            self.sock.bind((bind, 0))
        self.sock.connect((host, port))
        self.local = self.sock.getsockname()[:2]

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def recv(self, timeout: float) -> bytes | None:
        ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not ready:
            return None
        try:
            return self.sock.recv(MAX_DATAGRAM)
        except OSError:  # ICMP port unreachable surfaces here on a connected socket
            return None

    def close(self) -> None:
        self.sock.close()


class TcpTransport:
    name = "tcp"

    def __init__(self, host: str, port: int, timeout: float = 3.0, bind: str = "") -> None:
        self.sock = self._connect(host, port, timeout, bind)
        self.local = self.sock.getsockname()[:2]
        self.framer = StreamFramer()
        self._ready: list[bytes] = []

    def _connect(self, host: str, port: int, timeout: float, bind: str) -> socket.socket:
        return socket.create_connection(
            (host, port), timeout=timeout, source_address=(bind, 0) if bind else None
        )

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float) -> bytes | None:
        if self._ready:
            return self._ready.pop(0)
        while True:
            ready, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
            if not ready:
                return None
            try:
                chunk = self.sock.recv(MAX_DATAGRAM)
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            try:
                self._ready.extend(self.framer.feed(chunk))
            except SipParseError:
                return None
            if self._ready:
                return self._ready.pop(0)
            timeout = 0.5  # the rest of a message already begun

    def close(self) -> None:
        self.sock.close()


class TlsTransport(TcpTransport):
    """SIP over TLS. The certificate is not verified here: the TLS check judges it separately,
    and an admin's self-signed PBX must still be probed."""

    name = "tls"

    def _connect(self, host: str, port: int, timeout: float, bind: str) -> socket.socket:
        raw = super()._connect(host, port, timeout, bind)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx.wrap_socket(raw, server_hostname=host)


def open_transport(kind: str, host: str, port: int, bind: str = "") -> Transport:
    if kind == "udp":
        return UdpTransport(host, port, bind)
    if kind == "tcp":
        return TcpTransport(host, port, bind=bind)
    if kind == "tls":
        return TlsTransport(host, port, bind=bind)
    raise ValueError(f"unknown transport {kind!r}")
