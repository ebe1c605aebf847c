"""Fraud rule kinds that count calls in windows: velocity, concurrent, short_burst (per
account) and inbound_volume (per trunk). Each owns its state (bounded) and reads only facts
the fraud edge put on the call (`CallInfo.range_key`, ...): pure, like `fraudkinds`. The
kinds that keep a ledger per account (spend, new_country) are in `fraudledger`.

Two entries per kind. `feed(event, now)` is the contract of every kind (findings.FraudKind).
The typed entries (`Velocity.count`, `Concurrent.finished`, ...) take plain values and
return the shared empty `NOTHING` when nothing fires: the offline CDR loop
(`fraud.engine.FraudEngine.check`) calls them for millions of rows and must not build an
Event, a list or a Finding for a row on which nothing fires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sipguard.core.events import Event, Kind
from sipguard.detect.findings import (
    NOTHING,
    Finding,
    Found,
    dialled_call,
    drop,
    live_of,
    number,
    prune,
)

MAX_RANGES = 64  # short-call ranges tracked per account (the oldest goes)
MAX_INTERVALS = 256  # finished calls kept per account for the concurrency peak search
MAX_CALL_SECONDS = 4 * 3600  # how far back a CDR (written at hangup) can have started


class _Windows:
    """Sliding windows of call starts, (start, uid), per key (an account, a trunk): more
    than `max_calls` within `window` seconds fires, naming them; the oldest then leaves (the
    window stays bounded during a flood). `max_keys` (0: none) bounds the keys kept."""

    def __init__(self, window: float, max_calls: int, max_keys: int = 0) -> None:
        self.window, self.max_calls, self.max_keys = window, max_calls, max_keys
        self._starts: dict[str, list[tuple[float, str]]] = {}

    def reason(self, n: int, key: str) -> str:
        raise NotImplementedError

    def count(self, key: str, t: float, uid: str) -> Found:
        """A call of `key` started at `t` (the typed entry)."""
        try:  # a dict subscript is cheaper than .get() on this path, run for every row
            starts = self._starts[key]
        except KeyError:
            if self.max_keys and len(self._starts) >= self.max_keys:
                del self._starts[next(iter(self._starts))]
            starts = self._starts[key] = []
        starts.append((t, uid))
        horizon = t - self.window
        while starts[0][0] < horizon:
            del starts[0]
        if len(starts) <= self.max_calls:
            return NOTHING
        found = (Finding(key, self.reason(len(starts), key), tuple(u for _, u in starts)),)
        del starts[0]
        return found

    def feed(self, event: Event, now: float) -> list[Finding]:
        call = dialled_call(event)
        return [] if call is None else list(self.count(event.account or "", call.start, call.uid))

    def forget(self, key: str) -> None:
        self._starts.pop(key, None)

    def expire(self, now: float) -> int:
        """Drop the keys whose newest start left the window (they count nothing)."""
        gone = [k for k, s in self._starts.items() if s[-1][0] < now - self.window]
        for key in gone:
            del self._starts[key]
        return len(gone)

    def state_size(self) -> int:
        return sum(len(s) for s in self._starts.values())


class Velocity(_Windows):
    """More than `max_calls` call starts by one account within `window` seconds."""

    def __init__(self, params: Mapping[str, object]) -> None:
        super().__init__(number(params, "window", 600.0), int(number(params, "max_calls", 25)))

    def reason(self, n: int, key: str) -> str:
        return f"{n} calls in {self.window:.0f}s (max {self.max_calls})"


@dataclass(slots=True)
class _Finished:
    """An account's finished calls (CDRs, in hangup order) that may still overlap the next."""

    calls: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, uid)
    cap: int = 8  # prune beyond this (small lists keep thousands of accounts in cache)
    max_end: float = 0.0  # the latest end among `calls`: most calls overlap nothing


class Concurrent:
    """More than `max_calls` calls of one account at once (per account: `per_account`).

    Live: the calls between CALL_START and their CALL_END. Offline: finished calls arrive in
    hangup order, not dial order, so the exact peak is searched among the calls that ended
    after this one started."""

    def __init__(
        self, params: Mapping[str, object], per_account: Mapping[str, int] | None = None
    ) -> None:
        self.max_calls = int(number(params, "max_calls", 2))
        self.per_account = dict(per_account or {})
        self._finished: dict[str, _Finished] = {}
        self._live: dict[str, dict[str, float]] = {}  # account -> uid -> start

    def limit(self, account: str) -> int:
        return self.per_account.get(account, self.max_calls)

    def started(self, account: str, start: float, uid: str) -> Found:
        """A live call was dialled."""
        live = live_of(self._live, account)
        live[uid] = start
        limit = self.limit(account)
        if len(live) <= limit:
            return NOTHING
        uids = tuple(sorted(live, key=live.__getitem__))
        return (Finding(account, f"{len(live)} calls at once (max {limit})", uids),)

    def hung_up(self, account: str, uid: str) -> None:
        drop(self._live, account, uid)

    def live_calls(self, account: str) -> int:
        return len(self._live.get(account, ()))

    def finished(self, account: str, start: float, end: float, uid: str) -> Found:
        """A finished call's record (CDRs arrive in hangup order)."""
        try:
            st = self._finished[account]
        except KeyError:
            st = self._finished[account] = _Finished()
        if st.max_end <= start:  # overlaps nothing kept (most calls): just remember it
            calls = st.calls
            calls.append((start, end, uid))
            if len(calls) > st.cap:  # amortized: prune when the list doubles
                horizon = end - MAX_CALL_SECONDS
                calls[:] = [c for c in calls if c[1] >= horizon][-MAX_INTERVALS:]
                st.cap = max(8, 2 * len(calls))
            if end > st.max_end:
                st.max_end = end
            return NOTHING
        found = self._peak(account, st.calls, start, end, uid)
        if end > st.max_end:
            st.max_end = end
        return found

    def _peak(
        self,
        account: str,
        calls: list[tuple[float, float, str]],
        start: float,
        end: float,
        uid: str,
    ) -> Found:
        # Every earlier record ended no later than this one, so the calls overlapping this
        # one are those that ended after it started; the exact peak is among their starts.
        horizon = end - MAX_CALL_SECONDS
        if calls and calls[0][1] < horizon:
            calls[:] = [c for c in calls if c[1] >= horizon]
        overlapping = [c for c in calls if c[1] > start]
        calls.append((start, end, uid))
        if len(calls) > MAX_INTERVALS:
            del calls[0]
        limit = self.limit(account)
        if len(overlapping) < limit:
            return NOTHING
        group = [*overlapping, (start, end, uid)]
        best: list[tuple[float, float, str]] = []
        for p in sorted({max(start, s) for s, _, _ in group}):
            at_p = [c for c in group if c[0] <= p < c[1] or c[0] == p]
            if len(at_p) > len(best):
                best = at_p
        if len(best) <= limit:
            return NOTHING
        uids = tuple(u for _, _, u in sorted(best))
        return (Finding(account, f"{len(best)} calls at once (max {limit})", uids),)

    def feed(self, event: Event, now: float) -> list[Finding]:
        call, account = event.call, event.account
        if call is None or not account:
            return []
        if event.kind is Kind.CALL_START:
            return list(self.started(account, call.start, call.uid))
        if event.kind is Kind.CALL_END and call.record:
            end = call.end if call.end is not None else call.start
            return list(self.finished(account, call.start, end, call.uid))
        if event.kind is Kind.CALL_END:
            self.hung_up(account, call.uid)
        return []

    def forget(self, account: str) -> None:
        """An idle account's finished calls (never its live ones)."""
        self._finished.pop(account, None)

    def expire(self, now: float) -> int:
        """Drop finished calls no later record can overlap (it started after now - 4 h)."""
        gone = [a for a, st in self._finished.items() if st.max_end < now - MAX_CALL_SECONDS]
        for account in gone:
            del self._finished[account]
        return len(gone)

    def state_size(self) -> int:
        kept = sum(len(st.calls) for st in self._finished.values())
        return kept + sum(len(live) for live in self._live.values())


class ShortBurst:
    """At least `min_calls` calls of at most `max_seconds` by one account to one number range
    (the edge's `range_key`: the number without its last `range_digits` digits) within
    `window` seconds of their ends: range testing, wangiri call-backs."""

    def __init__(self, params: Mapping[str, object]) -> None:
        self.window = number(params, "window", 600.0)
        self.min_calls = int(number(params, "min_calls", 8))
        self.max_seconds = number(params, "max_seconds", 10.0)
        self.range_digits = int(number(params, "range_digits", 3))
        self._ranges: dict[str, dict[str, list[tuple[float, str]]]] = {}  # account -> range

    def short_call(self, account: str, end: float, range_key: str, uid: str) -> Found:
        """A finished call of at most `max_seconds` (the caller checked its length)."""
        ranges = self._ranges.get(account)
        if ranges is None:
            ranges = self._ranges[account] = {}
        q = ranges.get(range_key)
        if q is None:
            if len(ranges) >= MAX_RANGES:
                del ranges[next(iter(ranges))]
            q = ranges[range_key] = []
        q.append((end, uid))
        edge = end - self.window
        while q[0][0] < edge:
            del q[0]
        if len(q) < self.min_calls:
            return NOTHING
        reason = (
            f"{len(q)} calls of <= {self.max_seconds:.0f}s to {range_key}"
            f"{'X' * self.range_digits} in {self.window:.0f}s"
        )
        found = (Finding(account, reason, tuple(u for _, u in q)),)
        del q[0]
        return found

    def feed(self, event: Event, now: float) -> list[Finding]:
        call, account = event.call, event.account
        if call is None or not account or event.kind is not Kind.CALL_END:
            return []
        if call.billsec > self.max_seconds:
            return []
        end = call.end if call.end is not None else call.start
        return list(self.short_call(account, end, call.range_key, call.uid))

    def forget(self, account: str) -> None:
        self._ranges.pop(account, None)

    def expire(self, now: float) -> int:
        """Drop ranges whose newest short call left the window; then empty accounts."""
        edge = now - self.window
        return prune(self._ranges, lambda q: q[-1][0] < edge)

    def state_size(self) -> int:
        return sum(len(q) for r in self._ranges.values() for q in r.values())


MAX_TRUNKS = 64  # trunks (or inbound contexts) counted (a flood of names evicts the oldest)


class InboundVolume(_Windows):
    """More than `max_calls` inbound calls on one trunk (the event's account: the edge names
    the trunk, or the context) within `window` seconds. Never charged to an account."""

    def __init__(self, params: Mapping[str, object]) -> None:
        window, most = number(params, "window", 300.0), int(number(params, "max_calls", 10))
        super().__init__(window, most, MAX_TRUNKS)

    def reason(self, n: int, key: str) -> str:
        return f"{n} inbound calls in {self.window:.0f}s on {key} (max {self.max_calls})"


__all__ = [
    "MAX_CALL_SECONDS",
    "MAX_INTERVALS",
    "MAX_RANGES",
    "MAX_TRUNKS",
    "Concurrent",
    "InboundVolume",
    "ShortBurst",
    "Velocity",
]
