"""The networks sipguard must never ban: loopback, this host's own addresses, and the configured
CIDRs and hostnames (resolved at start and on every reload)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from ipaddress import ip_address, ip_network
from pathlib import Path

from sipguard.core import Network
from sipguard.daemon.logs import kv

log = logging.getLogger("sipguard.allow")

LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


def own_addresses() -> list[Network]:
    """Addresses configured on this host (in this network namespace), from /proc."""
    nets: set[Network] = set()
    # IPv4: the local-table entries of the FIB ("/32 host LOCAL" under an address)
    try:
        last = ""
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            s = line.strip()
            if s.startswith("|--"):
                last = s[3:].strip()
            elif s == "/32 host LOCAL" and last:
                nets.add(ip_network(f"{last}/32"))
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            hexaddr = line.split()[0]
            groups = ":".join(hexaddr[i : i + 4] for i in range(0, 32, 4))
            nets.add(ip_network(f"{ip_address(groups)}/128"))
    except (OSError, ValueError, IndexError):
        pass
    return sorted(nets, key=lambda n: (n.version, n))


def resolve_hosts(hosts: Iterable[str]) -> list[Network]:
    """Each hostname's current addresses. One that does not resolve is logged and skipped."""
    nets: set[Network] = set()
    for host in hosts:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            kv(log, logging.WARNING, "allow-list host does not resolve", host=host, error=exc)
            continue
        for info in infos:
            addr = str(info[4][0]).split("%")[0]
            ip = ip_address(addr)
            nets.add(ip_network(f"{ip}/{ip.max_prefixlen}"))
    return sorted(nets, key=lambda n: (n.version, n))


def build_allow_networks(
    networks: Iterable[str], hosts: Iterable[str], include_own: bool, extra: Iterable[str] = ()
) -> list[Network]:
    """The full allow-list. `extra` are CIDRs added at run time (`sipguard allow`)."""
    nets: set[Network] = set(LOOPBACK)
    for cidr in [*networks, *extra]:
        nets.add(ip_network(cidr, strict=False))
    nets.update(resolve_hosts(hosts))
    if include_own:
        nets.update(own_addresses())
    return sorted(nets, key=lambda n: (n.version, n))


def overlaps_any(net: Network, allowed: Iterable[Network]) -> Network | None:
    """The allow-listed network `net` overlaps, if any (so a /24 holding a trunk is refused)."""
    for a in allowed:
        if a.version == net.version and a.overlaps(net):
            return a
    return None
