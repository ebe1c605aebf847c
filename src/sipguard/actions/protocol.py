"""The interface every firewall backend implements, and the bookkeeping they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_network

from sipguard.actions.conntrack import Flusher
from sipguard.actions.errors import FirewallError
from sipguard.actions.ports import FirewallConfig
from sipguard.core.alerts import Action, Decision, Network
from sipguard.core.reconcile import collapse, diff_timed


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
