"""What the dashboard's overview shows that no other component keeps: events per minute by kind,
bans per minute, and the accounts being attacked from how many sources, over the last hour.

`LiveStats` is a pipeline observer (`on_event`, `on_alert`): called on the hot path, so each
call is a few dict operations. Bounded: 60 one-minute buckets, `MAX_ACCOUNTS` accounts with at
most `MAX_SOURCES` sources each. Times come from the events and decisions themselves.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sipguard.core import ATTACK_KINDS, Action, Alert, Decision, Event

T = TypeVar("T")
MINUTES = 60
MAX_ACCOUNTS = 1000
MAX_SOURCES = 500
DISTRIBUTED = 3  # sources on one account within the hour that make it a distributed attack
MAX_FRAUD = 50
MAX_ATTACKERS = 5000  # sources remembered for the attackers table (least recent evicted)
SHOWN_ACCOUNTS = 50  # accounts under attack on the overview, distributed ones first


@dataclass(slots=True)
class SourceSeen:
    events: int = 0
    first: float = 0.0
    last: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    accounts: set[str] = field(default_factory=set)


@dataclass(slots=True)
class AccountSeen:
    events: int = 0
    last: float = 0.0
    sources: set[str] = field(default_factory=set)


def _touch(table: OrderedDict[str, T], key: str, make: Callable[[], T], cap: int) -> T:
    """The entry for `key` (made when new), moved to the most recent end; the least recent
    entries beyond `cap` are dropped, so a flood of distinct keys cannot grow memory."""
    entry = table.pop(key, None)
    if entry is None:
        entry = make()
    table[key] = entry
    while len(table) > cap:
        table.popitem(last=False)
    return entry


class LiveStats:
    def __init__(self) -> None:
        self.events: dict[int, dict[str, int]] = {}  # minute -> kind -> count
        self.bans: dict[int, int] = {}  # minute -> bans decided
        self.accounts: OrderedDict[str, AccountSeen] = OrderedDict()
        self.sources: OrderedDict[str, SourceSeen] = OrderedDict()
        self.fraud: list[dict[str, object]] = []  # the newest fraud alerts with their calls
        self.seen = 0  # events and alerts so far: moving, detection is busy (web/feed.py)

    def on_event(self, event: Event) -> None:
        self.seen += 1
        minute = int(event.time // 60)
        counts = self.events.get(minute)
        if counts is None:
            counts = self.events[minute] = {}
            self._trim(minute)
        kind = event.kind.value
        counts[kind] = counts.get(kind, 0) + 1
        if event.kind not in ATTACK_KINDS:
            return
        account = event.account
        if event.ip is not None:
            self._source(str(event.ip), kind, account, event.time)
        if account is not None:
            seen = _touch(self.accounts, account[:200], AccountSeen, MAX_ACCOUNTS)
            seen.events += 1
            seen.last = event.time
            if event.ip is not None and len(seen.sources) < MAX_SOURCES:
                seen.sources.add(str(event.ip))

    def _source(self, ip: str, kind: str, account: str | None, at: float) -> None:
        seen = _touch(self.sources, ip, SourceSeen, MAX_ATTACKERS)
        seen.first = seen.first or at
        seen.events += 1
        seen.last = at
        if kind in seen.kinds or len(seen.kinds) < 32:
            seen.kinds[kind] = seen.kinds.get(kind, 0) + 1
        if account is not None and len(seen.accounts) < 20:
            seen.accounts.add(account[:200])

    def attackers(self, now: float, n: int | None = None) -> list[dict[str, object]]:
        """Sources seen attacking within the hour, most events first (the first `n`)."""
        current = [(ip, s) for ip, s in self.sources.items() if s.last > now - MINUTES * 60]
        if n is None:
            current.sort(key=lambda item: -item[1].events)  # stable: ties stay in table order
        else:  # the overview's top 15 of thousands: no row made, no full sort, for the rest
            current = heapq.nsmallest(n, current, key=lambda item: -item[1].events)
        return [
            {
                "source": ip,
                "events": s.events,
                "first": s.first,
                "last": s.last,
                "kinds": dict(s.kinds),
                "accounts": sorted(s.accounts),
            }
            for ip, s in current
        ]

    def top_sources(self, now: float, n: int) -> list[dict[str, object]]:
        return self.attackers(now, n)

    def on_alert(self, alert: Alert, decision: Decision | None) -> None:
        self.seen += 1
        if decision is not None and decision.action is Action.BAN:
            minute = int(decision.start // 60)
            self.bans[minute] = self.bans.get(minute, 0) + 1
        if alert.rule.startswith("fraud"):
            self.fraud.append(
                {
                    "time": alert.time,
                    "rule": alert.rule,
                    "key": alert.key,
                    "reason": alert.reason,
                    "calls": [e.to_dict() for e in alert.events[:20]],
                    "action": decision.action.value if decision is not None else "none",
                }
            )
            del self.fraud[:-MAX_FRAUD]

    def _trim(self, minute: int) -> None:
        for old in [m for m in self.events if m <= minute - MINUTES]:
            del self.events[old]
        for old in [m for m in self.bans if m <= minute - MINUTES]:
            del self.bans[old]

    def snapshot(self, now: float, minutes: int = 30) -> dict[str, object]:
        """The last `minutes` minutes, oldest first, as chart series; accounts attacked within
        the hour, distributed ones (several sources) first."""
        last = int(now // 60)
        span = range(last - minutes + 1, last + 1)
        kinds = sorted({k for m in span for k in self.events.get(m, {})})
        current = [(n, a) for n, a in self.accounts.items() if a.last > now - MINUTES * 60]
        first = heapq.nsmallest(  # = sorted(...)[:50], without sorting a thousand accounts
            SHOWN_ACCOUNTS,
            current,
            key=lambda item: (len(item[1].sources) < DISTRIBUTED, -item[1].events),
        )
        accounts = [
            {
                "account": name,
                "events": seen.events,
                "sources": len(seen.sources),
                "distributed": len(seen.sources) >= DISTRIBUTED,
                "last": seen.last,
            }
            for name, seen in first
        ]
        return {
            "minutes": [m * 60 for m in span],
            "events_by_kind": {k: [self.events.get(m, {}).get(k, 0) for m in span] for k in kinds},
            "bans_per_minute": [self.bans.get(m, 0) for m in span],
            "accounts": accounts,
            "fraud": list(reversed(self.fraud)),
        }
