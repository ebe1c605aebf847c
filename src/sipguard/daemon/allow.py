"""The networks sipguard must never ban: loopback, this host's own addresses, and the configured
CIDRs and hostnames (resolved at start and on every reload)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Protocol, TypeVar

from sipguard.config.settings import AllowSettings
from sipguard.core import Network
from sipguard.daemon.logs import kv
from sipguard.store import Store

T = TypeVar("T")


class IoRunner(Protocol):
    """The enforcer's I/O thread (the store's connection lives there)."""

    def __call__(self, fn: Callable[..., T], /, *args: object) -> Awaitable[T]: ...


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


class AllowListing:
    """The allow-list component: the configured entries (settings, fixed until a reload) plus
    the runtime ones (`sipguard allow`, kept in the store). `apply` is told each new full list
    (the policy's and the enforcer's set_allowed)."""

    def __init__(
        self,
        settings: AllowSettings,
        store: Store,
        io: IoRunner,
        apply: Callable[[list[Network]], Awaitable[list[Network]]],
    ) -> None:
        self.settings = settings
        self.store = store
        self._io = io
        self._apply = apply
        self.networks: list[Network] = list(LOOPBACK)

    async def build(self, settings: AllowSettings | None = None) -> list[Network]:
        """The full list for `settings` (default: the current ones), not yet applied."""
        s = settings or self.settings
        runtime = await self._io(self.store.allowlist)
        return await asyncio.to_thread(
            build_allow_networks, s.networks, s.hosts, s.own_addresses, runtime
        )

    async def set(self, settings: AllowSettings, networks: list[Network]) -> list[Network]:
        """Make `networks` (from `build`) the list in force; returns the bans it lifted."""
        self.settings, self.networks = settings, networks
        return await self._apply(networks)

    async def add(self, net: Network, note: str) -> list[Network]:
        await self._io(self.store.allowlist_add, str(net), note)
        return await self.set(self.settings, await self.build())

    async def remove(self, net: Network) -> bool:
        """Remove a runtime entry. A configured entry is refused: it lives in a file."""
        if str(net) not in await self._io(self.store.allowlist):
            configured = {str(ip_network(c, strict=False)) for c in self.settings.networks}
            if str(net) in configured:
                raise ValueError(
                    f"{net} is in the configuration file's [allow] networks:"
                    " remove it there and reload"
                )
            raise ValueError(
                f"{net} is not a runtime allow-list entry (see `sipguard allow --list`)"
            )
        await self._io(self.store.allowlist_remove, str(net))
        await self.set(self.settings, await self.build())
        return True

    async def entries(self) -> list[dict[str, str]]:
        """Every entry with where it comes from: config, runtime, loopback, host, own address."""
        runtime = await self._io(self.store.allowlist)
        s = self.settings
        out = [{"network": str(n), "origin": "loopback"} for n in LOOPBACK]
        out += [
            {"network": str(ip_network(c, strict=False)), "origin": "config"} for c in s.networks
        ]
        out += [{"network": c, "origin": "runtime"} for c in runtime]
        named = {d["network"] for d in out}
        for n in self.networks:  # what hostnames and this host's addresses resolved to
            if str(n) not in named:
                origin = "own address" if s.own_addresses and n in set(own_addresses()) else "host"
                out.append({"network": str(n), "origin": origin})
        return out
