"""The control API: JSON lines over a Unix socket (never pickle), permission-checked.

A request is one line `{"cmd": "bans", "args": {...}}`; the answer is one line
`{"ok": true, "result": ...}` or `{"ok": false, "error": "one line"}`. The socket is mode 0660;
every connection's peer credentials (SO_PEERCRED) are checked: root, the daemon's own user, or a
member of the socket's group. The CLI and the web face both talk through `request()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("sipguard.control")

MAX_REQUEST = 64 * 1024  # bytes in one request line
MAX_RESPONSE = 64 * 1024 * 1024  # `bans --json` on a busy host can be large
#: a command's result: anything json.dumps takes (dicts, lists, strings, numbers)
Reply = object
Handler = Callable[[str, dict[str, object]], Awaitable[Reply]]


class ControlError(Exception):
    """A control request failed: the daemon is not there, refused it, or answered an error."""


class RequestError(Exception):
    """Raised by a handler for a request it refuses; the text goes back to the client."""


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def _supplementary_groups(pid: int) -> set[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Groups:"):
                return {int(g) for g in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def peer_allowed(pid: int, uid: int, gid: int, group_gid: int | None) -> bool:
    if uid == 0 or uid == os.geteuid():
        return True
    if group_gid is None:
        return False
    return gid == group_gid or group_gid in _supplementary_groups(pid)


class ControlServer:
    def __init__(self, path: str, handler: Handler, group: str = "") -> None:
        self.path = path
        self.handler = handler
        self.group = group
        self.group_gid: int | None = None
        self.refused = 0
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def check_free(self) -> None:
        """Refuse to start beside a running daemon (before anything touches the kernel)."""
        if await _alive(self.path):
            raise ControlError(f"{self.path}: another sipguard daemon is answering there")

    async def start(self) -> None:
        p = Path(self.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_socket() or p.exists():
            await self.check_free()
            p.unlink()
        if self.group:
            try:
                self.group_gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise ControlError(f"daemon.socket_group: no such group {self.group!r}") from None
        # bind with a tight umask so the socket is never briefly world-accessible
        old = os.umask(0o117)
        try:
            self._server = await asyncio.start_unix_server(
                self._client, path=self.path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        if self.group_gid is not None:
            os.chown(self.path, -1, self.group_gid)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):  # connections still open (a client that hangs)
                writer.close()
            await self._server.wait_closed()
            self._server = None
            for _ in range(10):  # let the handlers see their closed streams and finish
                if not self._clients:
                    break
                await asyncio.sleep(0.01)
        try:
            Path(self.path).unlink()
        except FileNotFoundError:
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            sock = writer.get_extra_info("socket")
            pid, uid, gid = peer_credentials(sock)
            if not peer_allowed(pid, uid, gid, self.group_gid):
                self.refused += 1
                log.warning("control refused pid=%d uid=%d gid=%d", pid, uid, gid)
                # read (and ignore) the request first, so the client is not cut off mid-send
                with contextlib.suppress(ValueError, asyncio.LimitOverrunError):
                    await asyncio.wait_for(reader.readline(), 2.0)
                await _send(writer, {"ok": False, "error": "permission denied"})
                return
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(writer, {"ok": False, "error": "request too long"})
                    return
                if not line:
                    return
                await _send(writer, await self._answer(line))
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, object]:
        self.requests += 1
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "request is not JSON"}
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return {"ok": False, "error": 'request must be {"cmd": NAME, "args": {...}}'}
        args = req.get("args") or {}
        if not isinstance(args, dict):
            return {"ok": False, "error": "args must be an object"}
        try:
            return {"ok": True, "result": await self.handler(req["cmd"], args)}
        except RequestError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug in one command must not take the socket down
            log.exception("control command %s failed", req["cmd"])
            return {"ok": False, "error": f"internal error: {exc}"}


async def _send(writer: asyncio.StreamWriter, obj: dict[str, object]) -> None:
    writer.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


async def _alive(path: str) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
    return True


def request(
    path: str, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 10.0
) -> Any:  # the decoded JSON answer: its shape is the command's
    """Send one command to the running daemon and return its result (blocking; for the CLI)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"sipguard is not running (no daemon at {path})") from None
        except PermissionError:
            raise ControlError(
                f"{path}: permission denied (run as root or the socket's group)"
            ) from None
        try:
            sock.sendall(json.dumps({"cmd": cmd, "args": args or {}}).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered early (a refusal): read what it said
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_RESPONSE:
                raise ControlError("daemon answer too large")
    except TimeoutError:
        raise ControlError(f"no answer from the daemon at {path} within {timeout:g}s") from None
    except OSError as exc:
        raise ControlError(f"{path}: {exc.strerror or exc}") from None
    finally:
        sock.close()
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ControlError("the daemon closed the connection without an answer") from None
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "request failed")))
    return answer.get("result")
