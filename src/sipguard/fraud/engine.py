"""The fraud detectors: pure functions of calls, addresses and the time they carry.

No I/O and no clock: every input brings its own time. One engine serves both paths:
- offline (CDR rows, written when a call ends): `cdr_call(call)` runs every rule on the record;
- live (AMI): `call_started` at the dial, `call_ended` at the hangup, `tick(now)` for running
  costs, `seen_address` for registrations and authentications.
Each rule returns `Hit`s naming the calls behind it; merging hits into incidents is the
report's job (`fraud.report.AlertBook`), acting on them the watcher's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from sipguard.fraud.classify import Classifier, Destination
from sipguard.fraud.config import FraudConfig, RuleSpec
from sipguard.fraud.model import Call, Hit
from sipguard.fraud.tables import RateTable

MAX_EVIDENCE = 50  # uniqueids named by one hit
MAX_RANGES = 64  # short-call ranges tracked per account
MAX_CALL_SECONDS = 4 * 3600  # how far back a CDR (written at hangup) can have started
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(slots=True)
class AccountState:
    starts: deque[tuple[float, str]] = field(default_factory=deque)
    intervals: list[tuple[float, float, str]] = field(default_factory=list)
    active: dict[str, Call] = field(default_factory=dict)
    countries: set[str] = field(default_factory=set)
    day: int = -1
    spent: float = 0.0
    spend_calls: list[str] = field(default_factory=list)
    ranges: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    places: dict[str, tuple[float, str]] = field(default_factory=dict)
    last: float = 0.0


def _minutes(hhmm: str) -> int:
    h, _, m = hhmm.partition(":")
    return int(h) * 60 + int(m or 0)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


class FraudEngine:
    def __init__(
        self,
        config: FraudConfig,
        classifier: Classifier,
        rates: RateTable | None = None,
        country_of_ip: Callable[[str], str | None] | None = None,
        points: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self.config = config
        self.classifier = classifier
        self.rates = rates or RateTable()
        self.country_of_ip = country_of_ip
        self.points = points or {}
        self.accounts: dict[str, AccountState] = {}
        self.learn_until: float | None = None  # set by the first call unless a baseline is loaded
        self.calls_seen = 0
        self._tz = ZoneInfo(config.timezone)
        self._slots: dict[int, tuple[int, int, int]] = {}
        r = config.rules
        self._on = {name: spec.enabled for name, spec in r.items()}
        bh = r["after_hours"]
        self._bh_days = frozenset(_DAYS.index(d) for d in bh["days"] if d in _DAYS)
        self._bh_start, self._bh_end = _minutes(bh["start"]), _minutes(bh["end"])
        self._risky_types = frozenset(r["risky_destination"]["types"])

    # --- helpers -------------------------------------------------------------------------------

    def state(self, account: str) -> AccountState:
        st = self.accounts.get(account)
        if st is None:
            st = self.accounts[account] = AccountState()
        return st

    def local(self, t: float) -> tuple[int, int, int]:
        """(weekday 0=Mon, minute of day, day number) in the office's zone, cached by 15 min."""
        slot = int(t // 900)
        cached = self._slots.get(slot)
        if cached is None:
            dt = datetime.fromtimestamp(slot * 900, self._tz)
            cached = (dt.weekday(), dt.hour * 60 + dt.minute, dt.toordinal())
            if len(self._slots) > 100_000:
                self._slots.clear()
            self._slots[slot] = cached
        wd, minute, day = cached
        return wd, minute + int(t - slot * 900) // 60, day

    def _hit(self, spec: RuleSpec, call: Call, reason: str, calls: list[str], ip: str = "") -> Hit:
        return Hit(
            rule=spec.name,
            account=call.account,
            severity=spec.severity,
            reason=reason,
            time=call.end if call.end is not None else call.start,
            calls=tuple(calls[-MAX_EVIDENCE:]),
            actions=spec.actions,
            ip=ip,
            channels=(call.channel,) if call.channel and call.end is None else (),
        )

    def wanted(self, call: Call) -> Destination | None:
        """The destination when the call is one the rules look at (external, real account)."""
        if not call.account or call.account in self.config.ignore_accounts:
            return None
        dest = self.classifier.classify(call.dst)
        return dest if dest.external else None

    # --- entry points --------------------------------------------------------------------------

    def cdr_call(self, call: Call) -> list[Hit]:
        """A finished call from a CDR: every rule."""
        dest = self.wanted(call)
        if dest is None:
            return []
        st = self.state(call.account)
        hits = self._at_start(call, dest, st)
        if self._on["concurrent"]:
            hits += self._concurrent_offline(call, st)
        hits += self._at_end(call, dest, st)
        if call.ip:
            hits += self.seen_address(call.account, call.ip, call.start, call.uid)
        return hits

    def call_started(self, call: Call) -> list[Hit]:
        """A live call is being dialled (AMI DialBegin)."""
        dest = self.wanted(call)
        if dest is None:
            return []
        st = self.state(call.account)
        hits = self._at_start(call, dest, st)
        st.active[call.uid] = call
        limit = self._max_concurrent(call.account)
        if self._on["concurrent"] and len(st.active) > limit:
            spec = self.config.rules["concurrent"]
            uids = sorted(st.active, key=lambda u: st.active[u].start)
            hits.append(
                self._hit(spec, call, f"{len(st.active)} calls at once (max {limit})", uids)
            )
        if call.ip:
            hits += self.seen_address(call.account, call.ip, call.start, call.uid)
        return hits

    def call_ended(self, call: Call) -> list[Hit]:
        """A live call hung up; `call.end` and `call.billsec` are set."""
        st = self.accounts.get(call.account)
        if st is not None:
            st.active.pop(call.uid, None)
        dest = self.wanted(call)
        if dest is None or st is None:
            return []
        return self._at_end(call, dest, st)

    def tick(self, now: float) -> list[Hit]:
        """Running cost of answered live calls: hang up before the bill grows further."""
        spec = self.config.rules["spend"]
        if not spec.enabled or not self.rates.rates:
            return []
        hits = []
        for account, st in self.accounts.items():
            running = 0.0
            live = []
            for call in st.active.values():
                if call.answered:
                    dest = self.classifier.classify(call.dst)
                    running += self.rates.cost(dest.e164, max(0.0, now - call.start))
                    live.append(call)
            limit = self._daily_limit(account)
            spent = (st.spent if st.day == self.local(now)[2] else 0.0) + running
            if live and spent > limit:
                for call in live:
                    hits.append(
                        self._hit(spec, call, f"{spent:.2f} spent today incl. running calls "
                                  f"(daily limit {limit:.2f})", [*st.spend_calls, call.uid])
                    )
        return hits

    def seen_address(self, account: str, ip: str, now: float, uid: str = "") -> list[Hit]:
        """An account registered, authenticated or called from `ip`."""
        if self.country_of_ip is None or not account:
            return []
        country = self.country_of_ip(ip)
        if not country:
            return []  # private or unknown: nothing to compare
        hits: list[Hit] = []
        st = self.state(account)
        probe = Call(uid or f"{account}@{ip}", account, "", now, now)
        spec = self.config.rules["address_country"]
        allowed = self.config.account(account).countries or frozenset(spec["allowed"])
        if spec.enabled and allowed and country not in allowed:
            hits.append(
                self._hit(spec, probe, f"{ip} is in {country}, account allowed only in "
                          f"{','.join(sorted(allowed))}", [probe.uid], ip)
            )
        spec = self.config.rules["distant_registrations"]
        if spec.enabled and country in self.points:
            for other, (t, other_ip) in st.places.items():
                if other == country or now - t > spec["window"] or other not in self.points:
                    continue
                km = distance_km(self.points[country], self.points[other])
                if km >= spec["min_km"]:
                    hits.append(
                        self._hit(spec, probe, f"seen from {other_ip} ({other}) and {ip} "
                                  f"({country}), {km:.0f} km apart, within {now - t:.0f}s",
                                  [probe.uid])
                    )
        st.places[country] = (now, ip)
        if len(st.places) > 16:
            oldest = min(st.places, key=lambda c: st.places[c][0])
            del st.places[oldest]
        return hits

    def expire(self, now: float, idle: float = 2 * 86400) -> int:
        """Forget accounts idle for `idle` seconds (keeping learned countries). Returns count."""
        gone = [a for a, st in self.accounts.items() if now - st.last > idle and not st.active]
        for a in gone:
            st = self.accounts[a]
            st.starts.clear()
            st.intervals.clear()
            st.ranges.clear()
            st.places.clear()
        return len(gone)

    def baseline(self) -> dict[str, list[str]]:
        return {a: sorted(st.countries) for a, st in self.accounts.items() if st.countries}

    def load_baseline(self, data: dict[str, list[str]]) -> None:
        for account, countries in data.items():
            self.state(str(account)).countries.update(str(c) for c in countries)
        self.learn_until = float("-inf")

    # --- rules -----------------------------------------------------------------------------------

    def _max_concurrent(self, account: str) -> int:
        own = self.config.account(account).max_concurrent
        return own if own is not None else int(self.config.rules["concurrent"]["max_calls"])

    def _daily_limit(self, account: str) -> float:
        own = self.config.account(account).daily_limit
        return own if own is not None else float(self.config.rules["spend"]["daily_limit"])

    def _at_start(self, call: Call, dest: Destination, st: AccountState) -> list[Hit]:
        rules = self.config.rules
        hits: list[Hit] = []
        t = call.start
        st.last = max(st.last, t)
        self.calls_seen += 1
        if self.learn_until is None:
            self.learn_until = t + float(rules["new_country"]["learn_seconds"])

        if self._on["velocity"]:
            spec = rules["velocity"]
            starts = st.starts
            starts.append((t, call.uid))
            horizon = t - spec["window"]
            while starts and starts[0][0] < horizon:
                starts.popleft()
            if len(starts) > spec["max_calls"]:
                hits.append(self._hit(spec, call, f"{len(starts)} calls in {spec['window']}s "
                                      f"(max {spec['max_calls']})", [u for _, u in starts]))
                starts.popleft()  # keeps the deque bounded during a flood

        if self._on["risky_destination"]:
            spec = rules["risky_destination"]
            why = ""
            if dest.type in self._risky_types:
                why = dest.type.replace("_", " ")
            elif spec["hotlist"] and dest.hotlist:
                why = f"hotlist range {dest.hotlist}"
            elif spec["high_risk_countries"] and dest.high_risk:
                why = f"high-risk country {dest.country}"
            if why:
                hits.append(self._hit(spec, call, f"call to {dest.e164}: {why}", [call.uid]))

        if self._on["after_hours"] and dest.in_scope(rules["after_hours"]["scopes"]):
            wd, minute, _ = self.local(t)
            if wd not in self._bh_days or not self._bh_start <= minute < self._bh_end:
                spec = rules["after_hours"]
                hits.append(self._hit(spec, call, f"{dest.scope} call to {dest.e164} "
                                      f"({dest.country}, {dest.type}) outside business hours",
                                      [call.uid]))

        if dest.scope == "international" and dest.country not in st.countries:
            st.countries.add(dest.country)
            if self._on["new_country"] and t >= self.learn_until:
                spec = rules["new_country"]
                hits.append(self._hit(spec, call, f"first call to {dest.country} "
                                      f"({dest.e164})", [call.uid]))
        return hits

    def _at_end(self, call: Call, dest: Destination, st: AccountState) -> list[Hit]:
        rules = self.config.rules
        hits: list[Hit] = []
        end = call.end if call.end is not None else call.start

        if self._on["spend"] and call.billsec > 0 and self.rates.rates:
            cost = self.rates.cost(dest.e164, call.billsec)
            if cost > 0.0:
                day = self.local(call.start)[2]
                if day != st.day:
                    st.day, st.spent, st.spend_calls = day, 0.0, []
                st.spent += cost
                st.spend_calls.append(call.uid)
                if len(st.spend_calls) > MAX_EVIDENCE:
                    del st.spend_calls[0]
                limit = self._daily_limit(call.account)
                if st.spent > limit:
                    spec = rules["spend"]
                    hits.append(self._hit(spec, call, f"{st.spent:.2f} spent today (daily limit "
                                          f"{limit:.2f}); this call {cost:.2f}", st.spend_calls))

        spec = rules["short_burst"]
        if self._on["short_burst"] and call.billsec <= spec["max_seconds"]:
            digits = int(spec["range_digits"])
            rng = dest.e164[:-digits] if digits else dest.e164
            q = st.ranges.get(rng)
            if q is None:
                if len(st.ranges) >= MAX_RANGES:
                    del st.ranges[next(iter(st.ranges))]
                q = st.ranges[rng] = deque()
            q.append((end, call.uid))
            while q and q[0][0] < end - spec["window"]:
                q.popleft()
            if len(q) >= spec["min_calls"]:
                hits.append(self._hit(spec, call, f"{len(q)} calls of <= {spec['max_seconds']}s "
                                      f"to {rng}{'X' * digits} in {spec['window']}s",
                                      [u for _, u in q]))
                q.popleft()
        return hits

    def _concurrent_offline(self, call: Call, st: AccountState) -> list[Hit]:
        """Concurrency from CDRs, which arrive in hangup order, not dial order.

        Every earlier record ended no later than this one, so the calls overlapping this one
        are those that ended after it started; the exact peak is then found among their start
        points (rarely needed: most calls overlap nothing).
        """
        start = call.start
        end = call.end if call.end is not None else start
        ivs = st.intervals
        horizon = end - MAX_CALL_SECONDS
        if ivs and ivs[0][1] < horizon:
            ivs[:] = [iv for iv in ivs if iv[1] >= horizon]
        overlapping = [iv for iv in ivs if iv[1] > start]
        ivs.append((start, end, call.uid))
        if len(ivs) > 256:
            del ivs[0]
        limit = self._max_concurrent(call.account)
        if len(overlapping) < limit:
            return []
        group = [*overlapping, (start, end, call.uid)]
        best: list[tuple[float, float, str]] = []
        for p in sorted({max(start, s) for s, _, _ in group}):
            at_p = [iv for iv in group if iv[0] <= p < iv[1] or iv[0] == p]
            if len(at_p) > len(best):
                best = at_p
        if len(best) <= limit:
            return []
        spec = self.config.rules["concurrent"]
        uids = [u for _, _, u in sorted(best)]
        return [self._hit(spec, call, f"{len(best)} calls at once (max {limit})", uids)]
