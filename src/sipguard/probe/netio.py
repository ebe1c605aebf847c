"""Socket adapters for the service checks (AMI, HTTP, IAX2, TLS): one connection or datagram each.

Behind the `Net` interface so the checks run against a fake in unit tests. Every read is bounded
in size and time; nothing here retries.
"""

from __future__ import annotations

import select
import socket
import ssl
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Net", "SocketNet", "TlsResult"]

READ_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class TlsResult:
    connected: bool
    version: str = ""
    verify_error: str | None = None  # why the certificate does not verify (None: it does)
    old_protocols: tuple[str, ...] = ()  # TLS versions below 1.2 the server accepted
    untested: tuple[str, ...] = field(default=())  # versions this host's OpenSSL cannot offer


class Net(Protocol):
    def tcp(self, host: str, port: int, payload: bytes | None, timeout: float) -> bytes | None:
        """Connect, send `payload` (if any), read what comes within `timeout`.
        None when the connection is refused or times out."""
        ...

    def udp(self, host: str, port: int, payload: bytes, timeout: float) -> bytes | None: ...

    def tls(
        self, host: str, port: int, server_name: str, timeout: float, admit: Callable[[], None]
    ) -> TlsResult:
        """Handshakes (each admitted by `admit()` first): plain, verified, then old versions."""
        ...


def _read(sock: socket.socket, timeout: float) -> bytes:
    data = b""
    while len(data) < READ_LIMIT:
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            break
        try:
            chunk = sock.recv(READ_LIMIT - len(data))
        except OSError:
            break
        if not chunk:
            break
        data += chunk
        timeout = 0.3  # the rest of an answer already begun
    return data


class SocketNet:
    _admit: Callable[[], None] = staticmethod(lambda: None)

    def tcp(self, host: str, port: int, payload: bytes | None, timeout: float) -> bytes | None:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            return None
        with sock:
            if payload:
                try:
                    sock.sendall(payload)
                except OSError:
                    return b""
            return _read(sock, timeout)

    def udp(self, host: str, port: int, payload: bytes, timeout: float) -> bytes | None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect((host, port))
            sock.send(payload)
            ready, _, _ = select.select([sock], [], [], timeout)
            if not ready:
                return None
            try:
                return sock.recv(65535)
            except OSError:
                return None

    def _handshake(
        self, host: str, port: int, ctx: ssl.SSLContext, name: str, timeout: float
    ) -> str:
        self._admit()
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            return tls.version() or ""

    def tls(
        self, host: str, port: int, server_name: str, timeout: float, admit: Callable[[], None]
    ) -> TlsResult:
        self._admit = admit
        loose = ssl.create_default_context()
        loose.check_hostname = False
        loose.verify_mode = ssl.CERT_NONE
        try:
            version = self._handshake(host, port, loose, server_name, timeout)
        except (OSError, ssl.SSLError):
            return TlsResult(False)
        verify_error = None
        try:
            self._handshake(host, port, ssl.create_default_context(), server_name, timeout)
        except ssl.SSLCertVerificationError as exc:
            verify_error = exc.verify_message or str(exc)
        except (OSError, ssl.SSLError) as exc:
            verify_error = str(exc)
        old: list[str] = []
        untested: list[str] = []
        for label, proto in (("TLSv1", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1)):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                # offering a deprecated version is the point here, so its warning is expected
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                    ctx.minimum_version = proto
                    ctx.maximum_version = proto
            except (ValueError, ssl.SSLError):
                untested.append(label)
                continue
            try:
                self._handshake(host, port, ctx, server_name, timeout)
                old.append(label)
            except ssl.SSLError as exc:
                if "NO_PROTOCOLS_AVAILABLE" in str(exc).upper():
                    untested.append(label)
            except OSError:
                pass
        return TlsResult(True, version, verify_error, tuple(old), tuple(untested))
