"""A tiny SIP UAS for the end-to-end tests: counts what reaches it and answers like a PBX would.

Run inside the `pbx` namespace: python sip_responder.py PORT LOGFILE. It listens on UDP and TCP,
IPv4 and IPv6. Every message that reaches it is appended to LOGFILE as one JSON line (source,
first line, User-Agent, transport), then answered: REGISTER without Authorization -> 401 with
a digest challenge; INVITE -> 100 then 200 with a to-tag; ACK -> nothing; anything else -> 200.
It never validates credentials: it stands in for Asterisk only so that real clients can finish
their transactions.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import uuid
from typing import IO


def _headers(text: str) -> tuple[str, list[tuple[str, str]]]:
    lines = text.replace("\r\n", "\n").split("\n\n", 1)[0].split("\n")
    out = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        out.append((name.strip(), value.strip()))
    return lines[0], out


def _get(headers: list[tuple[str, str]], *names: str) -> str:
    for name, value in headers:
        if name.lower() in names:
            return value
    return ""


def answer(text: str) -> list[str]:
    first, headers = _headers(text)
    method = first.split(" ", 1)[0]
    if first.startswith("SIP/") or method == "ACK":
        return []
    keep = [
        (n, v) for n, v in headers if n.lower() in ("via", "v", "from", "f", "call-id", "i", "cseq")
    ]
    to = _get(headers, "to", "t")
    if ";tag=" not in to:
        to += ";tag=" + uuid.uuid4().hex[:8]

    def reply(code: str, extra: list[str]) -> str:
        lines = [f"SIP/2.0 {code}"] + [f"{n}: {v}" for n, v in keep] + [f"To: {to}"]
        lines += [*extra, "Server: test-pbx", "Content-Length: 0", "", ""]
        return "\r\n".join(lines)

    contact = "Contact: <sip:pbx@127.0.0.1>"
    if method == "REGISTER" and not _get(headers, "authorization"):
        nonce = uuid.uuid4().hex
        return [
            reply("401 Unauthorized", [f'WWW-Authenticate: Digest realm="pbx", nonce="{nonce}"'])
        ]
    if method == "INVITE":
        return [reply("100 Trying", []), reply("200 OK", [contact])]
    return [reply("200 OK", [contact])]


def _record(log: IO[str], lock: threading.Lock, src: str, text: str, transport: str) -> None:
    first, headers = _headers(text)
    rec = {"src": src.removeprefix("::ffff:"), "first": first[:200],
           "ua": _get(headers, "user-agent")[:100], "transport": transport}  # fmt: skip
    with lock:
        log.write(json.dumps(rec) + "\n")
        log.flush()


def _serve_tcp(conn: socket.socket, addr: str, log: IO[str], lock: threading.Lock) -> None:
    # framing by the blank line is enough here: the tests send bodiless messages over TCP
    buf = b""
    with conn:
        while data := conn.recv(65535):
            buf += data
            while b"\r\n\r\n" in buf:
                msg, buf = buf.split(b"\r\n\r\n", 1)
                text = msg.decode("utf-8", "replace") + "\r\n\r\n"
                _record(log, lock, addr, text, "tcp")
                for reply in answer(text):
                    conn.sendall(reply.encode())


def main() -> None:
    port, log_path = int(sys.argv[1]), sys.argv[2]
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.bind(("::", port))
    tcp = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    lock = threading.Lock()
    with open(log_path, "a", encoding="utf-8") as log:

        def accept() -> None:
            while True:
                conn, addr = tcp.accept()
                args = (conn, addr[0], log, lock)
                threading.Thread(target=_serve_tcp, args=args, daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()
        print("ready", flush=True)
        while True:
            data, addr = udp.recvfrom(65535)
            text = data.decode("utf-8", "replace")
            _record(log, lock, addr[0], text, "udp")
            for msg in answer(text):
                udp.sendto(msg.encode(), addr)


if __name__ == "__main__":
    main()
