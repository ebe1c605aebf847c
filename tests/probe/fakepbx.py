"""A small leaky SIP responder on loopback for the probe's unit tests (the real PBX is in e2e).

It behaves like chan_sip with alwaysauthreject=no and allowguest=yes: REGISTER/SUBSCRIBE for a
known user get 401, unknown users 404; OPTIONS 200 with the version in Server; an INVITE to a
number starting 00 rings (100, 180) and waits for CANCEL, which it answers 200 + 487. REGISTER
with the right digest for `secret` gets 200. It counts every datagram it receives.
"""

from __future__ import annotations

import hashlib
import re
import select
import socket
import threading

from sipguard.core.sip import SipParseError, parse_message

USERS = {"100": "1234"}
REALM = "asterisk"
NONCE = "5f2c0a1b"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class FakePbx:
    def __init__(self, answer_invite: bool = False, garbage: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.answer_invite = answer_invite  # answer 200 at once (a probe must hang up)
        self.garbage = garbage  # send junk before every real answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FakePbx:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.05)
            if not ready:
                continue
            data, addr = self.sock.recvfrom(65535)
            self.received.append(data)
            try:
                msg = parse_message(data)
            except SipParseError:
                continue
            for reply in self._answer(msg):
                if self.garbage:
                    self.sock.sendto(b"\x00\xffnot sip at all" * 50, addr)
                self.sock.sendto(reply, addr)

    def _reply(self, msg: object, code: str, extra: str = "") -> bytes:
        assert hasattr(msg, "headers")
        keep = [
            f"{n.title()}: {v}" for n, v in msg.headers if n in ("via", "from", "call-id", "cseq")
        ]
        to = msg.header("to") or ""
        if code[:1] != "1" and ";tag=" not in to:
            to += ";tag=fake1"
        lines = [f"SIP/2.0 {code}", *keep, f"To: {to}", "Server: Asterisk PBX 20.20.1"]
        if extra:
            lines.append(extra)
        return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()

    def _answer(self, msg: object) -> list[bytes]:
        method = msg.method  # type: ignore[attr-defined]
        from_user = msg.name_addr("from").uri.user  # type: ignore[attr-defined]
        ruri_user = msg.uri().user  # type: ignore[attr-defined]
        challenge = f'WWW-Authenticate: Digest realm="{REALM}", nonce="{NONCE}", algorithm=MD5'
        if method == "OPTIONS":
            return [self._reply(msg, "200 OK", "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE")]
        if method in ("REGISTER", "SUBSCRIBE"):
            if from_user not in USERS:
                return [self._reply(msg, "404 Not Found")]
            auth = msg.header("authorization")  # type: ignore[attr-defined]
            if auth is None:
                return [self._reply(msg, "401 Unauthorized", challenge)]
            m = re.search(r'response="([0-9a-f]+)"', auth)
            uri = re.search(r'uri="([^"]+)"', auth)
            assert m and uri
            ha1 = _md5(f"{from_user}:{REALM}:{USERS[from_user]}")
            want = _md5(f"{ha1}:{NONCE}:{_md5(f'{method}:{uri.group(1)}')}")
            return [self._reply(msg, "200 OK" if m.group(1) == want else "403 Forbidden")]
        if method == "INVITE":
            if from_user in USERS:
                return [self._reply(msg, "401 Unauthorized", challenge)]
            if ruri_user and ruri_user.startswith("00"):
                if self.answer_invite:
                    return [self._reply(msg, "200 OK", "Contact: <sip:trunk@127.0.0.1>")]
                return [self._reply(msg, "100 Trying"), self._reply(msg, "180 Ringing")]
            return [self._reply(msg, "404 Not Found")]
        if method == "CANCEL":
            terminated = self._reply(msg, "487 Request Terminated").replace(b" CANCEL", b" INVITE")
            return [self._reply(msg, "200 OK"), terminated]
        if method == "BYE":
            return [self._reply(msg, "200 OK")]
        return []  # ACK
