"""Firewall configuration: which table, which ports a ban covers, conntrack and netns options."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PORT_LIST = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")


@dataclass(frozen=True, slots=True)
class Ports:
    """Protected ports as "5060-5061,4569" strings; "" protects nothing on that protocol."""

    udp: str = "5060-5061,4569"
    tcp: str = "5060-5061"

    def __post_init__(self) -> None:
        for proto in ("udp", "tcp"):
            parse_ports(getattr(self, proto), proto)

    def ranges(self, proto: str) -> list[tuple[int, int]]:
        return parse_ports(getattr(self, proto), proto)


def parse_ports(spec: str, what: str = "ports") -> list[tuple[int, int]]:
    """ "5060-5061,4569" -> [(5060, 5061), (4569, 4569)]; ValueError names what is wrong."""
    spec = spec.replace(" ", "")
    if not spec:
        return []
    if len(spec) > 1000 or not _PORT_LIST.match(spec):
        raise ValueError(f"{what}: expected ports like '5060-5061,4569', got {spec[:60]!r}")
    out = []
    for part in spec.split(","):
        lo_s, _, hi_s = part.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if not (1 <= lo <= hi <= 65535):
            raise ValueError(f"{what}: port range {part!r} is out of 1-65535 or reversed")
        out.append((lo, hi))
    return out


@dataclass(frozen=True, slots=True)
class FirewallConfig:
    table: str = "sipguard"  # nft table name; iptables chain and ipset names derive from it
    ports: Ports = field(default_factory=Ports)
    all_ports: bool = False  # drop everything from a banned source, not just SIP/IAX
    flush_conntrack: bool = True
    netns: str | None = None  # run inside this named network namespace (tests, containers)
    prefer_cli: bool = False  # nftables: use the `nft` command even when libnftables loads

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,19}", self.table):
            raise ValueError(f"table: {self.table!r} must be a letter then up to 19 [A-Za-z0-9_]")
        if self.netns is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.netns):
            raise ValueError(f"netns: {self.netns!r} is not a namespace name")
