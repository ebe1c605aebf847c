"""Dry-run backend: keeps an in-memory picture of what the kernel would hold, and logs each change.

Used by `simulate`, by tests, and on hosts where sipguard must not touch the firewall. Time comes
from the `now` callers pass in (or the injected clock for `list`), so tests stay deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sipguard.actions.base import Firewall, FirewallConfig, ReconcileResult, as_network
from sipguard.core.alerts import Decision, Network

log = logging.getLogger("sipguard.firewall")


@dataclass(frozen=True, slots=True)
class Op:
    """One recorded change: verb (init, add, remove, flush, teardown), network, timeout."""

    verb: str
    network: Network | None = None
    timeout: int | None = None


class DryRunFirewall(Firewall):
    name = "dry-run"

    def __init__(self, cfg: FirewallConfig | None = None, clock: Callable[[], float] | None = None):
        super().__init__(cfg or FirewallConfig())
        self._clock = clock
        self.ops: list[Op] = []
        # network -> absolute expiry (None = permanent), in the clock's time
        self._held: dict[Network, float | None] = {}
        self._last_now = 0.0
        self.initialized = False
        self.feeds: dict[str, set[Network]] = {}

    def _now(self) -> float:
        return self._clock() if self._clock is not None else self._last_now

    def init(self) -> None:
        self.initialized = True
        self.ops.append(Op("init"))
        log.info("dry-run: would create table %s", self.cfg.table)

    def add(self, decisions: Sequence[Decision], now: float) -> list[Network]:
        self._last_now = now
        return super().add(decisions, now)

    def reconcile(self, desired: Sequence[Decision], now: float) -> ReconcileResult:
        self._last_now = now
        return super().reconcile(desired, now)

    def _flush(self, networks: list[Network]) -> None:
        self.ops.extend(Op("flush", n) for n in networks)

    def _apply(self, add: dict[Network, int | None], remove: Sequence[Network]) -> None:
        now = self._now()
        for net in remove:
            self.ops.append(Op("remove", net))
            self._held.pop(net, None)
            log.info("dry-run: would unban %s", net)
        for net, secs in add.items():
            self.ops.append(Op("add", net, secs))
            self._held[net] = None if secs is None else now + secs
            log.info("dry-run: would ban %s for %s", net, "ever" if secs is None else f"{secs}s")

    def list(self) -> dict[Network, float | None]:
        now = self._now()
        out: dict[Network, float | None] = {}
        for net, until in list(self._held.items()):
            if until is not None and until <= now:
                del self._held[net]  # the kernel would have expired it
                continue
            out[net] = None if until is None else until - now
        return out

    def set_feeds(self, names: Sequence[str]) -> None:
        self.feeds = {n: self.feeds.get(n, set()) for n in names}

    def load_feed(self, name: str, entries: Sequence[str]) -> int:
        self.feeds[name] = {as_network(e) for e in entries}
        log.info("dry-run: feed %s would hold %d networks", name, len(entries))
        return len(entries)

    def list_feed(self, name: str) -> set[Network]:
        return set(self.feeds.get(name, set()))

    def teardown(self) -> None:
        self.ops.append(Op("teardown"))
        self._held.clear()
        self.feeds.clear()
        self.initialized = False
        log.info("dry-run: would remove table %s", self.cfg.table)
