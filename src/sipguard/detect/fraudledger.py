"""Fraud rule kinds that keep a ledger per account: spend (the day's cost, the running cost
of live calls) and new_country (the countries each account called: the baseline a restart
loads). Pure, like `fraudcounts`, with the same two entries: `feed(event, now)` and typed
entries for the hot CDR loop that return the shared empty `NOTHING` when nothing fires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sipguard.core.events import Event, Kind
from sipguard.detect import findings  # its helpers, off the per-row path
from sipguard.detect.findings import MAX_EVIDENCE, NOTHING, Finding, Found


@dataclass(slots=True)
class _Day:
    limit: float  # the account's daily limit
    day: int = -1  # the day (a number from the edge, in the office's zone) `spent` is of
    spent: float = 0.0
    calls: list[str] = field(default_factory=list)  # that day's billed calls, the newest


class Spend:
    """The cost of an account's calls on one day (the edge's per-minute `rate`, the office's
    `day`) above `daily_limit` (per account: `per_account`); live, the running cost of its
    answered calls counts too (`tick`)."""

    def __init__(
        self, params: Mapping[str, object], per_account: Mapping[str, float] | None = None
    ) -> None:
        self.daily_limit = findings.number(params, "daily_limit", 50.0)
        self.per_account = dict(per_account or {})
        self._days: dict[str, _Day] = {}
        # account -> uid -> (rate, when answered or None): live calls, for running costs
        self._running: dict[str, dict[str, tuple[float, float | None]]] = {}

    def limit(self, account: str) -> float:
        return self.per_account.get(account, self.daily_limit)

    def billed(self, account: str, day: int, rate: float, billsec: float, uid: str) -> Found:
        """A finished call of `billsec` seconds at `rate` per minute, started on `day`."""
        try:
            st = self._days[account]
        except KeyError:
            st = self._days[account] = _Day(self.limit(account))
        if day != st.day:
            st.day, st.spent, st.calls = day, 0.0, []
        cost = rate * billsec / 60.0
        st.spent += cost
        calls = st.calls
        calls.append(uid)
        if len(calls) > MAX_EVIDENCE:
            del calls[0]
        if st.spent <= st.limit:
            return NOTHING
        reason = f"{st.spent:.2f} spent today (daily limit {st.limit:.2f}); this call {cost:.2f}"
        return (Finding(account, reason, tuple(calls)),)

    def dialled(self, account: str, uid: str, rate: float) -> None:
        findings.live_of(self._running, account)[uid] = (rate, None)

    def answered(self, account: str, uid: str, at: float) -> None:
        live = self._running.get(account)
        if live is not None and uid in live:
            live[uid] = (live[uid][0], at)

    def hung_up(self, account: str, uid: str) -> None:
        findings.drop(self._running, account, uid)

    def tick(self, now: float, day: int) -> list[Finding]:
        """Accounts whose day plus the running cost of their answered calls passes the limit:
        one finding per such call, naming the day's calls and that call last."""
        out: list[Finding] = []
        for account, live in self._running.items():
            answered = [(uid, rate, at) for uid, (rate, at) in live.items() if at is not None]
            if not answered:
                continue
            running = sum(rate * max(0.0, now - at) / 60 for _, rate, at in answered)
            st = self._days.get(account)
            limit = st.limit if st is not None else self.limit(account)
            spent = (st.spent if st is not None and st.day == day else 0.0) + running
            if spent > limit:
                reason = f"{spent:.2f} spent today with running calls (daily limit {limit:.2f})"
                before = st.calls if st is not None else []
                out += [Finding(account, reason, (*before, uid)) for uid, _, _ in answered]
        return out

    def feed(self, event: Event, now: float) -> list[Finding]:
        call, account = event.call, event.account
        if call is None or not account:
            return []
        if event.kind is Kind.CALL_START:
            self.dialled(account, call.uid, call.rate)
        elif event.kind is Kind.CALL_ANSWER:
            self.answered(account, call.uid, call.answer or call.start)
        elif event.kind is Kind.CALL_END:
            if not call.record:
                self.hung_up(account, call.uid)
            if call.billsec > 0 and call.rate > 0.0:
                return list(self.billed(account, call.day, call.rate, call.billsec, call.uid))
        return []

    def expire(self, now: float) -> int:
        return 0  # one small record per account: a day's total is what the limit is about

    def state_size(self) -> int:
        days = sum(1 + len(st.calls) for st in self._days.values())
        return days + sum(len(live) for live in self._running.values())


class NewCountry:
    """The first call of an account to a country it never called, once the learning period
    (`learn_seconds` from the first call, or over when a baseline is loaded) has passed.

    The countries learned are the baseline a restart loads: they never expire."""

    def __init__(self, params: Mapping[str, object]) -> None:
        self.learn_seconds = findings.number(params, "learn_seconds", 604800.0)
        self.learn_until: float | None = None  # set by the first call unless a baseline is loaded
        self._countries: dict[str, set[str]] = {}

    def learn_from(self, t: float) -> float:
        """The end of the learning period, which the first call (at `t`) starts."""
        if self.learn_until is None:
            self.learn_until = t + self.learn_seconds
        return self.learn_until

    def dialled(self, account: str, country: str, t: float, uid: str, dest: str) -> Found:
        """A call to `country` (an international destination's, not "")."""
        known = self._countries.get(account)
        if known is None:
            known = self._countries[account] = set()
        elif country in known:
            return NOTHING
        known.add(country)
        until = self.learn_until if self.learn_until is not None else self.learn_from(t)
        if t < until:
            return NOTHING
        return (Finding(account, f"first call to {country} ({dest})", (uid,)),)

    def feed(self, event: Event, now: float) -> list[Finding]:
        call = findings.dialled_call(event)
        if call is None:
            return []
        self.learn_from(call.start)
        if call.scope != "international" or not call.country:
            return []
        return list(
            self.dialled(event.account or "", call.country, call.start, call.uid, call.dest)
        )

    def baseline(self) -> dict[str, list[str]]:
        """The countries each account called (what a restart loads to skip learning)."""
        return {a: sorted(known) for a, known in self._countries.items() if known}

    def load_baseline(self, data: Mapping[str, Iterable[str]]) -> None:
        """Countries learned before: added to what is known, and learning is over."""
        for account, countries in data.items():
            self._countries.setdefault(str(account), set()).update(str(c) for c in countries)
        self.learn_until = float("-inf")

    def expire(self, now: float) -> int:
        return 0

    def state_size(self) -> int:
        return sum(len(known) for known in self._countries.values())


__all__ = ["NewCountry", "Spend"]
