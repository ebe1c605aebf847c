"""What one feed holds between refreshes. Pure: every method takes `now`.

Entries map a network to when it leaves the feed (None: until the list drops it). A plain list
replaces everything each time; APIBAN adds pages of addresses that each live 7 days from the
last time the feed named them; CrowdSec replaces on a startup answer and applies deltas after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sipguard.policy.blocklist import Prefix

APIBAN_LIFE = 7 * 86400.0  # APIBAN entries stay listed for 7 days


@dataclass
class FeedState:
    name: str
    entries: dict[Prefix, float | None] = field(default_factory=dict)
    cursor: str | None = None  # APIBAN: the ID to continue from
    etag: str = ""  # plain lists over HTTP: validators for conditional requests
    last_modified: str = ""
    synced: bool = False  # CrowdSec: a startup answer was applied (deltas make sense)
    generation: int = 0  # bumped whenever the entries change: the kernel set needs a reload
    last_ok: float | None = None
    last_attempt: float | None = None
    last_error: str = ""
    next_at: float = 0.0  # when the next refresh is due
    counts: dict[str, int] = field(default_factory=dict)

    def copy(self) -> FeedState:
        return replace(self, entries=dict(self.entries), counts=dict(self.counts))

    def count(self, key: str, n: int = 1) -> None:
        if n:
            self.counts[key] = self.counts.get(key, 0) + n

    def replace(self, entries: dict[Prefix, float | None]) -> None:
        if entries != self.entries:
            self.entries = entries
            self.generation += 1

    def extend(self, nets: Iterable[Prefix], until: float | None) -> None:
        """Add or prolong entries (an address named again lives on)."""
        changed = False
        for n in nets:
            old = self.entries.get(n, 0.0)
            if old is not None and (until is None or until > old):
                changed = changed or n not in self.entries
                self.entries[n] = until
        if changed:
            self.generation += 1

    def drop(self, nets: Iterable[Prefix]) -> None:
        gone = [n for n in nets if self.entries.pop(n, 0.0) != 0.0]
        if gone:
            self.generation += 1

    def expire(self, now: float) -> int:
        old = [n for n, t in self.entries.items() if t is not None and t <= now]
        for n in old:
            del self.entries[n]
        if old:
            self.generation += 1
        return len(old)

    def networks(self, now: float) -> list[Prefix]:
        return [n for n, t in self.entries.items() if t is None or t > now]

    def failed(self, now: float, error: str, retry_in: float) -> None:
        self.last_error = error[:300]
        self.count("failures")
        self.next_at = now + retry_in

    def succeeded(self, now: float, interval: float) -> None:
        self.last_ok = now
        self.last_error = ""
        self.count("refreshes")
        self.next_at = now + interval

    def view(self, now: float) -> dict[str, object]:
        return {
            "name": self.name,
            "entries": len(self.networks(now)),
            "last_ok": self.last_ok,
            "last_attempt": self.last_attempt,
            "last_error": self.last_error,
            "next_in": max(0.0, round(self.next_at - now, 1)),
            "cursor": self.cursor,
            "counts": dict(sorted(self.counts.items())),
        }
