"""Small programs the end-to-end tests run inside their namespaces (python nethelpers.py ROLE ...).

responder PORT COUNTS_FILE      a SIP-ish UDP responder: counts packets per source address,
                                answers each with "SIP/2.0 200 OK", writes the counts as JSON
sender HOST PORT EVERY OUT      one UDP flow from one fixed local port: sends an OPTIONS
                                every EVERY seconds, writes "sent replies" to OUT
ami                             the test AMI server (sipguard.testing.ami_server) on
                                127.0.0.1: prints its port, then pushes one security event
                                per JSON line read on stdin and answers "ok N"
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import sys
import time


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def responder(port: int, out: str) -> None:
    counts: dict[str, int] = {}
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v4.bind(("0.0.0.0", port))
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    v6.bind(("::", port))
    _write(out, "{}")
    last = 0.0
    while True:
        ready, _, _ = select.select([v4, v6], [], [], 0.05)
        for sock in ready:
            _data, addr = sock.recvfrom(65535)
            counts[addr[0]] = counts.get(addr[0], 0) + 1
            sock.sendto(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", addr)
        now = time.monotonic()
        if now - last > 0.05:
            last = now
            _write(out, json.dumps(counts))


def sender(host: str, port: int, every: float, out: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::" if ":" in host else "0.0.0.0", 0))  # one local port: a single conntrack flow
    sock.setblocking(False)
    sent = replies = 0
    local = sock.getsockname()[1]
    uri_host = f"[{host}]" if ":" in host else host
    while True:
        msg = (  # a well-formed OPTIONS, as a phone's keepalive (a packet sensor must pass it)
            f"OPTIONS sip:100@{uri_host} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {uri_host}:{local};branch=z9hG4bK{os.getpid()}x{sent};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:phone@{uri_host}>;tag=t{os.getpid()}\r\n"
            f"To: <sip:100@{uri_host}>\r\n"
            f"Call-ID: {os.getpid()}-{sent}@test\r\n"
            f"CSeq: {sent + 1} OPTIONS\r\n"
            "User-Agent: Yealink SIP-T46S\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        try:
            sock.sendto(msg, (host, port))
            sent += 1
        except OSError:
            pass
        deadline = time.monotonic() + every
        while time.monotonic() < deadline:
            try:
                sock.recv(65535)
                replies += 1
            except (BlockingIOError, ConnectionRefusedError):
                time.sleep(0.002)
        _write(out, f"{sent} {replies}")


async def ami() -> None:
    from sipguard.testing.ami_server import AmiServer

    server = await AmiServer(users={"sipguard": "s3cret"}).start()
    print(server.port, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        req = json.loads(line)
        if req.get("wait_login"):
            while server.logins < int(req["wait_login"]):
                await asyncio.sleep(0.02)
            print(f"ok {server.logins}", flush=True)
            continue
        sent = await server.push_security(req["event"], **req["fields"])
        print(f"ok {sent}", flush=True)
    await server.close()


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "responder":
        responder(int(args[0]), args[1])
    elif role == "sender":
        sender(args[0], int(args[1]), float(args[2]), args[3])
    elif role == "ami":
        asyncio.run(ami())
    else:
        raise SystemExit(f"unknown role {role}")
