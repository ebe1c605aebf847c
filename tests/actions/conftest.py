"""Helpers for kernel tests: a UDP receiver in the PBX namespace, a UDP sender in the attacker's."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sipguard.testing.netns import Host, NetLab

# Counts datagrams per port and rewrites a small JSON file every 20 ms; stops by itself.
RECEIVER = textwrap.dedent(
    """
    import json, os, select, socket, sys, time
    out, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
    socks = {}
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", p))
        socks[s] = p
    counts = {p: 0 for p in ports}
    end, last = time.monotonic() + 60, 0.0
    while time.monotonic() < end:
        for s in select.select(list(socks), [], [], 0.02)[0]:
            s.recv(2048)
            counts[socks[s]] += 1
        if time.monotonic() - last > 0.02:
            with open(out + ".tmp", "w") as f:
                json.dump(counts, f)
            os.replace(out + ".tmp", out)
            last = time.monotonic()
    """
)

# One socket, one source port: a single long-lived UDP "flow" per destination port.
SENDER = textwrap.dedent(
    """
    import socket, sys, time
    dst, ports = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 40000))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        for p in ports:
            s.sendto(b"OPTIONS sip:probe SIP/2.0\\r\\n\\r\\n", (dst, p))
        time.sleep(0.005)
    """
)


class Flow:
    def __init__(self, lab: NetLab, pbx: Host, atk: Host, tmp: Path, ports: list[int]) -> None:
        self.lab, self.pbx, self.atk, self.file = lab, pbx, atk, tmp / "counts.json"
        p = ",".join(map(str, ports))
        lab.popen(pbx, [sys.executable, "-c", RECEIVER, str(self.file), p])
        time.sleep(0.3)  # sockets bound before the first datagram
        lab.popen(atk, [sys.executable, "-c", SENDER, atk.hub_ip, p])

    def counts(self) -> dict[int, int]:
        try:
            return {int(k): v for k, v in json.loads(self.file.read_text()).items()}
        except (FileNotFoundError, ValueError):
            return {}

    def wait_for(self, port: int, n: int, timeout: float = 10) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.counts().get(port, 0) >= n:
                return
            time.sleep(0.05)
        raise AssertionError(f"port {port} never got {n} datagrams: {self.counts()}")

    def conntrack_from(self, src: str) -> str:
        r = self.lab.run(self.pbx, ["conntrack", "-L", "-p", "udp", "-s", src], check=False)
        return r.stdout


@pytest.fixture
def pbx_attacker(netlab: NetLab) -> tuple[NetLab, Host, Host]:
    pbx = netlab.add_host("pbx")
    atk = netlab.add_host("attacker", hub=pbx)
    return netlab, pbx, atk


@pytest.fixture
def flow_cls() -> type[Flow]:
    return Flow
