"""`/metrics` on its own port, served from the daemon's event loop.

A deliberately small HTTP/1.1 responder (GET /metrics, nothing else) rather than
prometheus_client's threaded server: the collector then reads the daemon's counters on the
loop that changes them, so a scrape never sees a dict mid-update. The request is bounded
(size and time) since the port may face a network.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger("sipguard.metrics")
MAX_REQUEST = 8192  # request line and headers; a scraper sends a few hundred bytes
READ_TIMEOUT = 5.0


def parse_listen(value: str) -> tuple[str, int]:
    """ "127.0.0.1:9877", "[::1]:9877" -> (host, port); port 0 = any free port (status shows
    it). ValueError naming what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class MetricsServer:
    def __init__(self, host: str, port: int, render: Callable[[], bytes]) -> None:
        self.host, self.port, self.render = host, port, render
        self.scrapes = 0
        self.bad_requests = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=MAX_REQUEST
        )
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]  # the real port when 0 was asked (tests)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            method, _, rest = head.partition(b" ")
            path = rest.split(b" ", 1)[0].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = b"405 Method Not Allowed", b"GET only\n", b"text/plain"
            elif path != b"/metrics":
                status, body, ctype = b"404 Not Found", b"try /metrics\n", b"text/plain"
            else:
                self.scrapes += 1
                status, body = b"200 OK", self.render()
                ctype = CONTENT_TYPE_LATEST.encode()
            if method == b"HEAD":
                body = b""
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: "
                + ctype
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\nConnection: close\r\n\r\n"
                + body
            )
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
        ):
            self.bad_requests += 1  # garbage, too big or too slow: counted, connection closed
        except Exception as exc:  # a collector bug must not kill the server
            self.bad_requests += 1
            log.error("metrics request failed: %s", exc)
        finally:
            writer.close()
