"""A scripted SIP client for the end-to-end tests (run inside the attacker/trunk namespace).

python sip_client.py TARGET_IP COUNT METHOD REQUEST_HOST USER_AGENT [SECONDS]
sends COUNT out-of-dialog requests (each its own Call-ID) spread over SECONDS, to TARGET_IP:5060,
with Request-URI and To on REQUEST_HOST, and prints {"sent": N, "answered": M} (M = requests
that got any response within half a second after the last send).
"""

from __future__ import annotations

import json
import socket
import sys
import time
import uuid


def request(method: str, host: str, ua: str, local: tuple[str, int], n: int) -> bytes:
    tag, call_id = uuid.uuid4().hex[:10], f"{uuid.uuid4().hex}@{local[0]}"
    lines = [
        f"{method} sip:100@{host} SIP/2.0",
        f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
        "Max-Forwards: 70",
        f"From: <sip:100@{host}>;tag={tag}",
        f"To: <sip:100@{host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {n + 1} {method}",
        f"Contact: <sip:100@{local[0]}:{local[1]}>",
        f"User-Agent: {ua}",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def main() -> None:
    target, count, method, host, ua = sys.argv[1:6]
    seconds = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    sock = socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((target, 5060))
    local = sock.getsockname()[:2]
    sock.setblocking(False)
    answered: set[str] = set()

    def drain() -> None:
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, ConnectionRefusedError):
                return
            for line in data.decode("utf-8", "replace").split("\r\n"):
                if line.lower().startswith("call-id:"):
                    answered.add(line.split(":", 1)[1].strip())

    start = time.monotonic()
    total = int(count)
    for n in range(total):
        if seconds:
            delay = start + seconds * n / total - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        try:
            sock.send(request(method, host, ua, local, n))
        except ConnectionRefusedError:
            pass
        drain()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        time.sleep(0.05)
        drain()
    print(json.dumps({"sent": total, "answered": len(answered)}))


if __name__ == "__main__":
    main()
