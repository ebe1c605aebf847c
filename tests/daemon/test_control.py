"""The control protocol over a real Unix socket: JSON lines, errors, limits, permissions."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.daemon.control import (
    MAX_REQUEST,
    ControlError,
    ControlServer,
    RequestError,
    request,
)


async def handler(cmd: str, args: dict) -> object:
    if cmd == "echo":
        return {"cmd": cmd, "args": args}
    if cmd == "refuse":
        raise RequestError("not today")
    if cmd == "crash":
        raise ZeroDivisionError("boom")
    raise RequestError(f"unknown command {cmd!r}")


def serve(path: str, body, group: str = "") -> object:
    """Run `body(server)` in a thread while the server runs in this loop."""

    async def main() -> object:
        server = ControlServer(path, handler, group)
        await server.start()
        try:
            return await asyncio.to_thread(body, server)
        finally:
            await asyncio.sleep(0.05)  # let the last connection's handler run before closing
            await server.close()

    return asyncio.run(main())


def raw(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(data)
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def test_request_round_trip_and_errors(tmp_path):
    path = str(tmp_path / "c.sock")

    def body(server: ControlServer) -> None:
        assert request(path, "echo", {"a": [1, "x"]}) == {"cmd": "echo", "args": {"a": [1, "x"]}}
        with pytest.raises(ControlError, match=r"^not today$"):
            request(path, "refuse")
        with pytest.raises(ControlError, match="internal error: boom"):
            request(path, "crash")
        # the server is still fine after a crashing command
        assert request(path, "echo")["cmd"] == "echo"
        assert server.requests == 4

    serve(path, body)
    assert not Path(path).exists()  # removed on close


def test_garbage_and_oversized_requests_get_one_line_errors(tmp_path):
    path = str(tmp_path / "c.sock")

    def body(server: ControlServer) -> None:
        assert b"not JSON" in raw(path, b"\xff\xfe{{{\n")
        assert b"must be" in raw(path, b"[1, 2]\n")
        assert b"args must be an object" in raw(path, b'{"cmd": "echo", "args": 5}\n')
        assert b"too long" in raw(path, b"x" * (MAX_REQUEST + 10) + b"\n")
        # several requests on one connection, answered in order
        two = raw(path, b'{"cmd":"echo"}\n{"cmd":"echo","args":{"n":2}}\n')
        assert two.count(b"\n") >= 1

    serve(path, body)


def test_socket_mode_is_0660(tmp_path):
    path = str(tmp_path / "c.sock")

    def body(server: ControlServer) -> int:
        return stat.S_IMODE(os.stat(path).st_mode)

    assert serve(path, body) == 0o660


def test_second_daemon_on_a_live_socket_is_refused_but_stale_file_is_replaced(tmp_path):
    path = str(tmp_path / "c.sock")
    Path(path).write_text("stale")  # a leftover from a kill -9

    def body(server: ControlServer) -> None:
        async def second() -> None:
            await ControlServer(path, handler).start()

        with pytest.raises(ControlError, match="another sipguard daemon"):
            asyncio.run(second())

    serve(path, body)


def test_no_daemon_is_a_clear_error(tmp_path):
    with pytest.raises(ControlError, match="sipguard is not running"):
        request(str(tmp_path / "none.sock"), "status")


def as_nobody(path: str) -> str:
    """Connect as uid/gid 65534 from a forked child (the interpreter under /root is not
    readable by nobody, so no new process) and return the raw answer."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: only plain syscalls, then _exit
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            data = raw(path, b'{"cmd": "echo", "args": {"who": "nobody"}}\n')
        except OSError as exc:
            data = f"OSERROR {exc}".encode()
        os.write(w, data)
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
@pytest.mark.parametrize(("group", "expect"), [("", "permission denied"), ("nogroup", "nobody")])
def test_peer_credentials_are_checked(group, expect):
    # a directory everyone may enter, so only the socket's own check decides
    d = tempfile.mkdtemp(prefix="sgctl")
    os.chmod(d, 0o755)
    path = os.path.join(d, "c.sock")

    def body(server: ControlServer) -> tuple[str, int]:
        os.chmod(path, 0o666)  # as if misconfigured: SO_PEERCRED must still refuse strangers
        return as_nobody(path), server.refused

    try:
        out, refused = serve(path, body, group)
    finally:
        os.rmdir(d)
    assert expect in out
    assert refused == (0 if group else 1)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_any_request_bytes_get_an_answer_never_an_exception(data):
    server = ControlServer("/nonexistent/never-bound.sock", handler)
    answer = asyncio.run(server._answer(data))
    assert set(answer) in ({"ok", "result"}, {"ok", "error"})
    assert isinstance(answer["ok"], bool)
