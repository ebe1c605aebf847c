"""What every firewall backend shares: configuration, the interface, errors, small helpers."""

from __future__ import annotations

import logging
import re
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import TYPE_CHECKING

from sipguard.core.alerts import Action, Decision, Network
from sipguard.policy.reconcile import collapse, diff_timed

if TYPE_CHECKING:
    from sipguard.actions.conntrack import Flusher

log = logging.getLogger("sipguard.firewall")

_PORT_LIST = re.compile(r"^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$")
# subprocess calls to nft/iptables/ipset/conntrack must never hang the daemon's worker thread
CMD_TIMEOUT = 30.0


class FirewallError(Exception):
    """The kernel (or the tool in front of it) refused a change; the message is theirs."""


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


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    added: tuple[Network, ...]
    removed: tuple[Network, ...]
    kept: tuple[Network, ...]


def timeouts(decisions: Sequence[Decision], now: float) -> dict[Network, int | None]:
    """Active BAN decisions -> kernel timeout in whole seconds (None = permanent).

    Several decisions for one network merge to the longest; expired ones are skipped.
    """
    out: dict[Network, int | None] = {}
    for d in decisions:
        if d.action is not Action.BAN or not d.active(now):
            continue
        secs = None if d.expires is None else max(1, int(d.expires - now + 0.999))
        if d.network in out:
            prev = out[d.network]
            secs = None if prev is None or secs is None else max(prev, secs)
        out[d.network] = secs
    return out


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def run_tool(argv: Sequence[str], netns: str | None, stdin: str | None = None) -> str:
    """Run one tool (argv list, never a shell); FirewallError with its stderr on failure."""
    full = [*netns_prefix(netns), *argv]
    try:
        proc = subprocess.run(
            full, input=stdin, capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"{argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().replace("\n", "; ")
        raise FirewallError(f"{' '.join(argv[:3])}: {msg[:2000]}")
    return proc.stdout


def flush_conntrack(networks: Sequence[Network], netns: str | None) -> int:
    """Delete the conntrack entries whose original source is in one of `networks`.

    Runs after the drop is in the kernel, so the flow cannot be recreated. Missing entries are
    normal ("0 flow entries have been deleted" exits 1) and are not errors. Returns how many
    networks had entries deleted.
    """
    flushed = 0
    for net in networks:
        fam = "ipv4" if net.version == 4 else "ipv6"
        argv = ["conntrack", "-D", "-f", fam, "-s", str(net.network_address)]
        if net.prefixlen != net.max_prefixlen:
            argv += ["--mask-src", str(net.netmask)]
        try:
            proc = subprocess.run(
                [*netns_prefix(netns), *argv],
                capture_output=True,
                text=True,
                timeout=CMD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("conntrack flush of %s failed: %s", net, exc)
            continue
        if proc.returncode == 0:
            flushed += 1
        elif "0 flow entries" not in proc.stderr:
            log.warning("conntrack flush of %s failed: %s", net, proc.stderr.strip()[:300])
    return flushed


def as_network(value: str) -> Network:
    return ip_network(value, strict=False)


class Firewall(ABC):
    """A kernel drop list for banned networks. Synchronous: the daemon calls it from a thread."""

    name = "firewall"

    def __init__(self, cfg: FirewallConfig) -> None:
        self.cfg = cfg
        self._flusher: Flusher | None = None

    @abstractmethod
    def init(self) -> None:
        """Create table/sets/rules; idempotent, keeps existing elements."""

    @abstractmethod
    def _apply(self, add: dict[Network, int | None], remove: Sequence[Network]) -> None:
        """One atomic change: (re)add `add` with their timeouts, delete `remove` (if present)."""

    @abstractmethod
    def teardown(self) -> None:
        """Remove everything this backend added, and nothing else."""

    def close(self) -> None:
        """Finish queued conntrack flushes and release handles; the kernel state stays."""
        if self._flusher is not None:
            self._flusher.close()
            self._flusher = None

    def _flush(self, networks: list[Network]) -> None:
        """Queue conntrack flushes for new bans; a background thread does them in batches.

        Off the ban path on purpose: the drop is already in the kernel (and runs before
        conntrack), while one ctnetlink dump walks the whole conntrack hash (~10 ms here).
        """
        # imported here: conntrack -> libnft -> base would be a cycle at module load
        from sipguard.actions.conntrack import Flusher

        if self._flusher is None:
            self._flusher = Flusher(self.cfg.netns)
        self._flusher.submit(networks)

    # ---- blocklist feeds: one kernel set per feed, replaced whole -------------------------
    def set_feeds(self, names: Sequence[str]) -> None:
        """Create the sets and drop rules of exactly these feeds; other feeds' sets go."""
        raise FirewallError(f"{self.name}: blocklist feeds are not supported")

    def load_feed(self, name: str, entries: Sequence[str]) -> int:
        """Atomically replace feed `name`'s set by `entries` ("192.0.2.7", "198.51.100.0/24",
        no overlaps; texts, not objects: 100,000 ipaddress objects alone cost a second)."""
        raise FirewallError(f"{self.name}: blocklist feeds are not supported")

    def list_feed(self, name: str) -> set[Network]:
        """What the kernel holds for feed `name`."""
        raise FirewallError(f"{self.name}: blocklist feeds are not supported")

    def wait_flushed(self, timeout: float = 10.0) -> bool:
        """Block until queued conntrack flushes are done (tests, shutdown); False on timeout."""
        return True if self._flusher is None else self._flusher.wait(timeout)

    def add(self, decisions: Sequence[Decision], now: float) -> list[Network]:
        """Ban the active BAN decisions in one transaction; returns the networks sent."""
        want = timeouts(decisions, now)
        if not want:
            return []
        self._apply(want, ())
        if self.cfg.flush_conntrack:
            self._flush(list(want))
        return list(want)

    def remove(self, networks: Sequence[Network]) -> None:
        if networks:
            self._apply({}, list(dict.fromkeys(networks)))

    def reconcile(self, desired: Sequence[Decision], now: float) -> ReconcileResult:
        """Make the kernel hold exactly the active BAN decisions, with their timeouts."""
        want_all = timeouts(desired, now)
        wanted = collapse(want_all)
        want = {n: t for n, t in want_all.items() if n in wanted}
        have = self.list()
        wanted_f: dict[Network, float | None] = dict(want)
        d = diff_timed(have, wanted_f)
        if d.to_add or d.to_remove:
            self._apply({n: want[n] for n in d.to_add}, sorted(d.to_remove, key=_sort_key))
            fresh = [n for n in d.to_add if n not in have]
            if self.cfg.flush_conntrack and fresh:
                self._flush(fresh)
        return ReconcileResult(
            added=tuple(sorted(d.to_add, key=_sort_key)),
            removed=tuple(sorted(d.to_remove, key=_sort_key)),
            kept=tuple(sorted(d.kept, key=_sort_key)),
        )

    # last in the class body: a method named `list` shadows the builtin in later annotations
    @abstractmethod
    def list(self) -> dict[Network, float | None]:
        """Networks the kernel holds -> seconds left (None = no timeout)."""


def _sort_key(n: Network) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)


def is_v4(n: Network) -> bool:
    return isinstance(n, IPv4Network)


def is_v6(n: Network) -> bool:
    return isinstance(n, IPv6Network)
