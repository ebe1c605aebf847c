"""Throw-away network labs for end-to-end tests: namespaces joined by veth pairs.

Every address lives inside namespaces the lab itself creates; nothing leaves the machine. Hosts
are joined point-to-point to a hub (usually the PBX), each link on its own TEST-NET /24 and a
2001:db8::/64, so tests can tell sources apart by address.

    with NetLab() as lab:
        pbx = lab.add_host("pbx")
        atk = lab.add_host("attacker", hub=pbx)   # atk.ip, atk.hub_ip, atk.ip6, ...
        lab.run(pbx, ["nft", "list", "ruleset"])
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

# one /24 per link; hubs are .1, spokes .2
_LINK_NETS = ["203.0.113", "198.51.100", "192.0.2", "100.64.1", "100.64.2", "100.64.3"]


def netns_available() -> bool:
    """True when this process can create namespaces and has nft (root, iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"sgprobe{os.getpid()}"
    ok = subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


@dataclass
class Host:
    name: str  # the namespace name
    ip: str = ""  # this host's IPv4 on its link to the hub
    ip6: str = ""
    hub_ip: str = ""  # the hub's IPv4 on the same link
    hub_ip6: str = ""
    links: list[str] = field(default_factory=list)


class NetLab:
    def __init__(self, prefix: str = "sg") -> None:
        self.prefix = f"{prefix}{os.getpid() % 100000}"
        self.hosts: dict[str, Host] = {}
        self._links = 0
        self._procs: list[subprocess.Popen[Any]] = []

    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, role: str, hub: Host | None = None) -> Host:
        ns = f"{self.prefix}{role}"[:15]
        _ip("netns", "add", ns)
        host = Host(ns)
        self.hosts[role] = host
        self.run(host, ["ip", "link", "set", "lo", "up"])
        if hub is not None:
            self._link(hub, host)
        return host

    def _link(self, hub: Host, spoke: Host) -> None:
        n = self._links
        self._links += 1
        net = _LINK_NETS[n]
        a, b = f"{self.prefix}a{n}"[:15], f"{self.prefix}b{n}"[:15]
        _ip("link", "add", a, "type", "veth", "peer", "name", b)
        _ip("link", "set", a, "netns", hub.name)
        _ip("link", "set", b, "netns", spoke.name)
        v6 = f"2001:db8:{n + 1}::"
        self.run(hub, ["ip", "addr", "add", f"{net}.1/24", "dev", a])
        self.run(hub, ["ip", "-6", "addr", "add", f"{v6}1/64", "dev", a, "nodad"])
        self.run(hub, ["ip", "link", "set", a, "up"])
        self.run(spoke, ["ip", "addr", "add", f"{net}.2/24", "dev", b])
        self.run(spoke, ["ip", "-6", "addr", "add", f"{v6}2/64", "dev", b, "nodad"])
        self.run(spoke, ["ip", "link", "set", b, "up"])
        self.run(spoke, ["ip", "route", "add", "default", "via", f"{net}.1"])
        spoke.ip, spoke.ip6 = f"{net}.2", f"{v6}2"
        spoke.hub_ip, spoke.hub_ip6 = f"{net}.1", f"{v6}1"
        hub.links.append(a)
        spoke.links.append(b)

    def cmd(self, host: Host, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", host.name, *argv]

    def run(
        self, host: Host, argv: Sequence[str], check: bool = True, timeout: float = 60, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.cmd(host, argv), check=check, capture_output=True, text=True, timeout=timeout, **kw
        )

    def popen(self, host: Host, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(self.cmd(host, argv), **kw)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True)
        self.hosts.clear()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def kernel_set(lab: NetLab, host: Host, table: str = "sipguard") -> set[str]:
    """Every address/CIDR in sipguard's nftables sets in `host`, as networks."""
    out = lab.run(host, ["nft", "-j", "list", "table", "inet", table], check=False)
    if out.returncode != 0:
        return set()
    found: set[str] = set()
    for item in json.loads(out.stdout)["nftables"]:
        for elem in item.get("set", {}).get("elem", []):
            val = elem["elem"]["val"] if isinstance(elem, dict) and "elem" in elem else elem
            if isinstance(val, dict) and "prefix" in val:
                val = f"{val['prefix']['addr']}/{val['prefix']['len']}"
            found.add(str(ip_network(str(val), strict=False)))
    return found
