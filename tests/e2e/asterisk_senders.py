"""Small SIP/AMI clients the real-Asterisk tests run inside attacker and phone namespaces.

    python asterisk_senders.py ROLE ARGS...   prints one JSON object on stdout

ami-login HOST PORT USER SECRET N     N connections, each one wrong Login; the responses seen
tcp-probe HOST PORT                   "synack", "refused" or "timeout" (1 s) for one TCP connect
options HOST PORT                     one OPTIONS over UDP: "answer" or "none" (1 s)
flood HOST PORT RATE SECONDS USER     REGISTERs for USER at RATE/s from one port, never answering
                                      the 401: when each went out and when each answer came back
phone HOST PORT USER PASSWORD ROUNDS EVERY BAD
                                      a phone: REGISTER, answer the 401 with the digest, every
                                      EVERY s for ROUNDS rounds; rounds listed in BAD ("1,3") use a
                                      mistyped password; the final status of each round
invite HOST PORT DISPLAY              one INVITE whose From display name is DISPLAY (raw text)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import socket
import sys
import time


def _sock(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    return s


def _request(
    method: str, host: str, port: int, local: tuple[str, int], user: str, n: int, **kw: str
) -> bytes:
    """One SIP request; `display` and `auth` (an Authorization value) are optional."""
    lip, lport = local
    display = kw.get("display", "")
    frm = f'"{display}" <sip:{user}@{host}>' if display else f"<sip:{user}@{host}>"
    callid = kw.get("callid", f"{os.getpid()}-{n}@{lip}")
    ruri = f"sip:{host}:{port}" if method == "REGISTER" else f"sip:600@{host}:{port}"
    lines = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {lip}:{lport};branch=z9hG4bK{os.getpid()}x{n};rport",
        "Max-Forwards: 70",
        f"From: {frm};tag=t{os.getpid()}x{n}",
        f"To: <sip:{user}@{host}>",
        f"Call-ID: {callid}",
        f"CSeq: {kw.get('cseq', '1')} {method}",
        f"Contact: <sip:{user}@{lip}:{lport}>",
        "User-Agent: Yealink SIP-T46S",
    ]
    if method == "REGISTER":
        lines.append("Expires: 60")
    if "auth" in kw:
        lines.append(f"Authorization: {kw['auth']}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


def _recv(s: socket.socket, timeout: float) -> bytes | None:
    ready, _, _ = select.select([s], [], [], timeout)
    if not ready:
        return None
    try:
        return s.recv(65535)
    except OSError:
        return None


def _local(s: socket.socket, host: str, port: int) -> tuple[str, int]:
    s.connect((host, port))
    ip, lport = s.getsockname()[:2]
    return str(ip), int(lport)


def ami_login(host: str, port: int, user: str, secret: str, n: int) -> dict[str, object]:
    seen = []
    for i in range(n):
        try:
            with socket.create_connection((host, port), timeout=2) as c:
                c.settimeout(2)
                c.recv(1024)  # the banner
                login = f"Action: Login\r\nUsername: {user}\r\nSecret: {secret}{i}\r\n\r\n"
                c.sendall(login.encode())
                seen.append(c.recv(4096).decode(errors="replace").strip())
        except OSError as exc:
            seen.append(type(exc).__name__)
    return {"responses": seen}


def tcp_probe(host: str, port: int) -> dict[str, object]:
    try:
        with socket.create_connection((host, port), timeout=1):
            return {"result": "synack"}
    except ConnectionRefusedError:
        return {"result": "refused"}
    except OSError:
        return {"result": "timeout"}


def options(host: str, port: int) -> dict[str, object]:
    s = _sock(host)
    local = _local(s, host, port)
    s.send(_request("OPTIONS", host, port, local, "probe", 1))
    data = _recv(s, 1.0)
    return {"result": "answer" if data else "none"}


def flood(host: str, port: int, rate: float, seconds: float, user: str) -> dict[str, object]:
    s = _sock(host)
    local = _local(s, host, port)
    sent: list[float] = []
    answers: list[float] = []
    start = time.time()
    n = 0
    while time.time() < start + seconds:
        due = start + n / rate
        while (now := time.time()) < due:
            data = _recv(s, due - now)
            if data and data.startswith(b"SIP/2.0 "):
                answers.append(time.time())
        try:
            s.send(_request("REGISTER", host, port, local, user, n))
        except OSError:
            pass
        sent.append(time.time())
        n += 1
    while (data := _recv(s, 1.0)) is not None:
        answers.append(time.time())
    return {"sent": sent, "answers": answers}


def _digest(challenge: str, user: str, password: str, uri: str, method: str) -> str:
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = fields["realm"], fields["nonce"]
    ha1 = hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    out = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
    if "qop" in fields:
        cnonce, nc = "0a4f113b", "00000001"
        resp = hashlib.md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}".encode()).hexdigest()
        out += f'response="{resp}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        resp = hashlib.md5(f"{ha1}:{nonce}:{ha2}".encode()).hexdigest()
        out += f'response="{resp}", algorithm=MD5'
    if "opaque" in fields:
        out += f', opaque="{fields["opaque"]}"'
    return out


def _status(data: bytes | None) -> int:
    if not data:
        return 0
    first = data.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) > 1 and first[1].isdigit() else 0


def phone(
    host: str, port: int, user: str, password: str, rounds: int, every: float, bad: set[int]
) -> dict[str, object]:
    s = _sock(host)
    local = _local(s, host, port)
    results = []
    uri = f"sip:{host}:{port}"
    for r in range(rounds):
        callid = f"phone-{os.getpid()}-{r}@{local[0]}"
        s.send(_request("REGISTER", host, port, local, user, 2 * r, callid=callid))
        data = _recv(s, 2.0)
        while data is not None and _status(data) == 100:
            data = _recv(s, 2.0)
        status = _status(data)
        if status == 401 and data is not None:
            head = data.decode(errors="replace")
            m = re.search(r"^WWW-Authenticate:\s*(.*)$", head, re.M | re.I)
            pw = password + "typo" if r in bad else password
            auth = _digest(m.group(1) if m else "", user, pw, uri, "REGISTER")
            again = _request(
                "REGISTER", host, port, local, user, 2 * r + 1, callid=callid, cseq="2", auth=auth
            )
            s.send(again)
            data = _recv(s, 2.0)
            while data is not None and _status(data) == 100:
                data = _recv(s, 2.0)
            status = _status(data)
        results.append(status)
        time.sleep(every)
    return {"results": results}


def invite(host: str, port: int, display: str) -> dict[str, object]:
    s = _sock(host)
    local = _local(s, host, port)
    s.send(_request("INVITE", host, port, local, "100", 1, display=display))
    return {"result": _status(_recv(s, 1.0))}


if __name__ == "__main__":
    role, a = sys.argv[1], sys.argv[2:]
    if role == "ami-login":
        out = ami_login(a[0], int(a[1]), a[2], a[3], int(a[4]))
    elif role == "tcp-probe":
        out = tcp_probe(a[0], int(a[1]))
    elif role == "options":
        out = options(a[0], int(a[1]))
    elif role == "flood":
        out = flood(a[0], int(a[1]), float(a[2]), float(a[3]), a[4])
    elif role == "phone":
        bad = {int(x) for x in a[6].split(",") if x}
        out = phone(a[0], int(a[1]), a[2], a[3], int(a[4]), float(a[5]), bad)
    elif role == "invite":
        out = invite(a[0], int(a[1]), a[2])
    else:
        raise SystemExit(f"unknown role {role}")
    print(json.dumps(out), flush=True)
