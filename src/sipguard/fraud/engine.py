"""The fraud detectors: pure functions of calls, addresses and the time they carry.

No I/O and no clock: every input brings its own time. One engine serves both paths:
- offline (CDR rows, written when a call ends): `cdr_call(call)` runs every rule on the record;
- live (AMI): `call_started` at the dial, `call_ended` at the hangup, `tick(now)` for running
  costs, `seen_address` for registrations and authentications.
Each rule returns `Hit`s naming the calls behind it; merging hits into incidents is the
report's job (`fraud.report.AlertBook`), acting on them the watcher's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from ipaddress import ip_address
from zoneinfo import ZoneInfo

from sipguard.core.events import CallInfo, Event, Kind, Service
from sipguard.detect.fraudkinds import (
    FRAUD_KINDS,
    AddressCountry,
    AfterHours,
    DistantRegistrations,
    distance_km,
)
from sipguard.fraud.cdr import CallTuple, CdrParser
from sipguard.fraud.classify import Classifier
from sipguard.fraud.config import FraudConfig, RuleSpec
from sipguard.fraud.model import Call, Hit
from sipguard.fraud.state import (
    MAX_CALL_SECONDS,
    MAX_EVIDENCE,
    MAX_RANGES,
    AccountState,
    DestInfo,
)
from sipguard.fraud.tables import RateTable

_UNSEEN = object()

__all__ = ["MAX_CALL_SECONDS", "MAX_EVIDENCE", "MAX_RANGES", "FraudEngine", "distance_km"]


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
        self._info: dict[str, DestInfo] = {}
        self._ip_cc: dict[str, str | None] = {}
        r = config.rules
        # Rule parameters as plain attributes: the offline scan reads them a million times.
        self.velocity, self.concurrent = r["velocity"], r["concurrent"]
        self.after_hours, self.new_country = r["after_hours"], r["new_country"]
        self.spend, self.short_burst = r["spend"], r["short_burst"]
        self.risky_destination = r["risky_destination"]
        # The detectors moved into detect/ as rule kinds (they read the facts `event` fills in).
        self._risky = FRAUD_KINDS["risky_destination"](self.risky_destination.params)
        self._vel_window, self._vel_max = float(r["velocity"]["window"]), r["velocity"]["max_calls"]
        hours = self._after_hours = AfterHours(self.after_hours.params)
        self._bh_days, self._bh_start, self._bh_end = hours.days, hours.start, hours.end
        own = {a: p.countries for a, p in config.accounts.items() if p.countries}
        self._address = AddressCountry(r["address_country"].params, own)
        self._distant = DistantRegistrations(r["distant_registrations"].params)
        self._short_max = float(r["short_burst"]["max_seconds"])
        self._short_window = float(r["short_burst"]["window"])
        self._spend_on = self.spend.enabled
        self._vel_on, self._conc_on = self.velocity.enabled, self.concurrent.enabled
        self._short_on = self.short_burst.enabled
        self._short_min = int(r["short_burst"]["min_calls"])
        self._ignore = config.ignore_accounts | config.trunks  # a trunk's calls are inbound
        # Inbound calls per trunk (or context) in the inbound_volume window: (start, uid).
        self._inbound: dict[str, list[tuple[float, str]]] = {}

    # --- helpers -------------------------------------------------------------------------------

    def state(self, account: str) -> AccountState:
        st = self.accounts.get(account)
        if st is None:
            st = self.accounts[account] = AccountState(limit=self._daily_limit(account))
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

    def info(self, dialled: str) -> DestInfo:
        info = self._info.get(dialled)
        if info is None:
            dest = self.classifier.classify(dialled)
            spec = self.risky_destination
            why = ""
            if dest.type in spec["types"]:
                why = dest.type.replace("_", " ")
            elif spec["hotlist"] and dest.hotlist:
                why = f"hotlist range {dest.hotlist}"
            elif spec["high_risk_countries"] and dest.high_risk:
                why = f"high-risk country {dest.country}"
            digits = int(self.short_burst["range_digits"])
            after = dest.in_scope(self.after_hours["scopes"])
            info = DestInfo(
                dest,
                self.rates.per_minute(dest.e164) if dest.e164 else 0.0,
                after,
                why,
                dest.e164[:-digits] if digits else dest.e164,
                dest.external,
                dest.country if dest.scope == "international" else "",
                bool(why) or after,
            )
            if len(self._info) > 262_144:
                self._info.clear()
            self._info[dialled] = info
        return info

    def add_hotlist(self, prefix: str, label: str) -> None:
        """A hotlist range learned while running (another node's fraud range): the cached
        destination facts are dropped so the next call into it is a hotlist hit."""
        self.classifier.add_hotlist(prefix, label)
        self._info.clear()

    def _hit(
        self,
        spec: RuleSpec,
        call: Call,
        reason: str,
        calls: list[str],
        ip: str = "",
        dest: str = "",
    ) -> Hit:
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
            dest=dest,
        )

    def event(self, call: Call, info: DestInfo) -> Event:
        """The call as the detect/ rule kinds read it: the destination facts filled in here,
        at the edge, where the classifier, hotlist, rates and the office's zone are."""
        dest = info.dest
        weekday, minute, _ = self.local(call.start)
        return Event(
            time=call.end if call.end is not None else call.start,
            kind=Kind.CALL_START if call.end is None else Kind.CALL_END,
            service=Service.UNKNOWN,
            account=call.account,
            target=call.dst,
            call=CallInfo(
                uid=call.uid,
                channel=call.channel,
                start=call.start,
                answer=call.answer,
                end=call.end,
                billsec=call.billsec,
                answered=call.answered,
                line_no=call.line_no,
                dest=dest.e164,
                risky=info.risky,
                scope=dest.scope,
                country=dest.country,
                dest_type=dest.type,
                hours_scoped=info.after_hours,
                weekday=weekday,
                minute=minute,
            ),
        )

    def wanted(self, call: Call) -> DestInfo | None:
        """The destination when the call is one the rules look at (external, real account)."""
        info = self._info.get(call.dst) or self.info(call.dst)
        if not info.external or not call.account or call.account in self._ignore:
            return None
        return info

    def _max_concurrent(self, account: str) -> int:
        own = self.config.account(account).max_concurrent
        return own if own is not None else int(self.concurrent["max_calls"])

    def _daily_limit(self, account: str) -> float:
        own = self.config.account(account).daily_limit
        return own if own is not None else float(self.spend["daily_limit"])

    # --- entry points --------------------------------------------------------------------------

    def cdr_call(self, call: Call) -> list[Hit]:
        """A finished call from a CDR: every rule."""
        info = self.wanted(call)
        if info is None:
            return []
        st = self.accounts.get(call.account) or self.state(call.account)
        hits = self._at_start(call, info, st)
        if self.concurrent.enabled:
            end = call.end if call.end is not None else call.start
            if st.max_end > call.start:
                hits += self._concurrent_offline(call, st)
            else:
                ivs = st.intervals
                ivs.append((call.start, end, call.uid))
                if len(ivs) > st.ivs_cap:  # amortized: prune when the list doubles
                    ivs[:] = [iv for iv in ivs if iv[1] >= end - MAX_CALL_SECONDS][-256:]
                    st.ivs_cap = max(8, 2 * len(ivs))
            if end > st.max_end:
                st.max_end = end
        hits += self._at_end(call, info, st)
        if call.ip:
            hits += self.seen_address(call.account, call.ip, call.start, call.uid)
        return hits

    def check(
        self,
        records: Iterable[CallTuple],
        source: str,
        offset: int = 0,
        on_hit: Callable[[Hit], object] | None = None,
    ) -> list[Hit]:
        """CDR records (`CdrParser.records`, outbound only) through every rule, in order.

        Most records change a few counters and fire nothing. For those, this does in place
        exactly the bookkeeping `cdr_call` would do (velocity window, call intervals, daily
        spend, short-call ranges); a record on which any rule could fire (a risky
        destination, a call after hours, a new country, an overlap, a full window, a spend
        near the limit, a short call near a burst, an address with a country) becomes a
        `Call` and takes `cdr_call`. Hits go to `on_hit` when given, else are returned.
        `offset` shifts the records' line numbers (the parallel scan's ranges).
        """
        out: list[Hit] = []
        report = on_hit or out.append
        infos, info_of, accounts, new_state = self._info, self.info, self.accounts, self.state
        slots, local = self._slots, self.local
        ip_cc, ip_country = self._ip_cc, self.ip_country
        vel_on, vel_max, vel_window = self._vel_on, self._vel_max, self._vel_window
        conc_on, spend_on = self._conc_on, self._spend_on
        short_on, short_max = self._short_on, self._short_max
        short_min, short_window = self._short_min, self._short_window
        bh_days, bh_start, bh_end = self._bh_days, self._bh_start, self._bh_end
        learning = self.learn_until is None  # until the first call sets the learning period
        quiet = 0  # calls handled in place (cdr_call counts its own)
        for line, account, dst, start, end, billsec, disp, chan, uid, ip in records:
            info = infos.get(dst) or info_of(dst)
            uid = uid or f"{source}:{line + offset}"
            st = accounts.get(account) or new_state(account)
            key = int(start // 900)
            slot = slots.get(key)
            if slot is None:
                local(start)  # fills the cache
                slot = slots[key]
            cc = ip_cc.get(ip, _UNSEEN) if ip else None
            if cc is _UNSEEN:
                cc = ip_country(ip)
            short = billsec <= short_max
            rate = info.rate
            after_hours = False
            if info.after_hours:  # e.g. any international call: is it business hours?
                minute = slot[1] + int(start - key * 900) // 60
                after_hours = slot[0] not in bh_days or not bh_start <= minute < bh_end
            if (
                info.risky
                or after_hours
                or (info.country and info.country not in st.countries)
                or len(st.starts) >= vel_max
                or st.max_end > start
                or learning
                or cc
                or (short and len(st.ranges.get(info.range_key, ())) >= short_min - 1)
                or (
                    rate
                    and billsec > 0
                    and (st.spent if slot[2] == st.day else 0.0) + rate * billsec / 60.0 > st.limit
                )
            ):
                call = Call(uid, account, dst, start, end, billsec, disp, chan, ip, line + offset)
                for hit in self.cdr_call(call):
                    report(hit)
                learning = self.learn_until is None
                continue
            # Nothing can fire: the bookkeeping of _at_start, concurrency and _at_end.
            end_t = end if end is not None else start
            quiet += 1
            if start > st.last:
                st.last = start
            if vel_on:
                starts = st.starts
                starts.append((start, uid))
                horizon = start - vel_window
                while starts[0][0] < horizon:
                    del starts[0]
            if conc_on:
                ivs = st.intervals
                ivs.append((start, end_t, uid))
                if len(ivs) > st.ivs_cap:  # amortized: prune when the list doubles
                    ivs[:] = [v for v in ivs if v[1] >= end_t - MAX_CALL_SECONDS][-256:]
                    st.ivs_cap = max(8, 2 * len(ivs))
                if end_t > st.max_end:
                    st.max_end = end_t
            if billsec > 0 and rate > 0.0 and spend_on:
                if slot[2] != st.day:
                    st.day, st.spent, st.spend_calls = slot[2], 0.0, []
                st.spent += rate * billsec / 60.0
                st.spend_calls.append(uid)
                if len(st.spend_calls) > MAX_EVIDENCE:
                    del st.spend_calls[0]
            if short and short_on:
                q = st.ranges.get(info.range_key)
                if q is None:
                    if len(st.ranges) >= MAX_RANGES:
                        del st.ranges[next(iter(st.ranges))]
                    q = st.ranges[info.range_key] = []
                q.append((end_t, uid))
                edge = end_t - short_window
                while q[0][0] < edge:
                    del q[0]
        self.calls_seen += quiet
        return out

    def cdr_parser(self, source: str) -> CdrParser:
        """A parser of one CDR source that yields only the calls the rules look at."""
        cfg = self.config
        tz = cfg.cdr.timezone or cfg.timezone
        ignore = cfg.ignore_accounts | cfg.trunks  # a trunk's calls are inbound
        return CdrParser(cfg.cdr, tz, source, self.outbound, ignore, cfg.inbound_contexts)

    def outbound(self, dst: str) -> bool:
        """Whether the rules look at a call to `dst` (the CDR loop's filter)."""
        return (self._info.get(dst) or self.info(dst)).external

    def ip_country(self, ip: str) -> str | None:
        """Country of an address (cached; None when private, unknown, or no lookup is set)."""
        if self.country_of_ip is None:
            return None
        try:
            return self._ip_cc[ip]
        except KeyError:
            if len(self._ip_cc) > 65_536:
                self._ip_cc.clear()
            cc = self._ip_cc[ip] = self.country_of_ip(ip)
            return cc

    def call_started(self, call: Call) -> list[Hit]:
        """A live call is being dialled (AMI DialBegin)."""
        info = self.wanted(call)
        if info is None:
            return []
        st = self.state(call.account)
        hits = self._at_start(call, info, st)
        st.active[call.uid] = call
        limit = self._max_concurrent(call.account)
        if self.concurrent.enabled and len(st.active) > limit:
            uids = sorted(st.active, key=lambda u: st.active[u].start)
            msg = f"{len(st.active)} calls at once (max {limit})"
            hits.append(self._hit(self.concurrent, call, msg, uids))
        if call.ip:
            hits += self.seen_address(call.account, call.ip, call.start, call.uid)
        return hits

    def call_ended(self, call: Call) -> list[Hit]:
        """A live call hung up; `call.end` and `call.billsec` are set."""
        st = self.accounts.get(call.account)
        if st is not None:
            st.active.pop(call.uid, None)
        info = self.wanted(call)
        if info is None or st is None:
            return []
        return self._at_end(call, info, st)

    def tick(self, now: float) -> list[Hit]:
        """Running cost of answered live calls: hang up before the bill grows further."""
        if not self._spend_on or not self.rates.rates:
            return []
        hits = []
        for account, st in self.accounts.items():
            live = [c for c in st.active.values() if c.answered]
            if not live:
                continue
            running = sum(
                self.info(c.dst).rate * max(0.0, now - (c.answer or c.start)) / 60 for c in live
            )
            limit = self._daily_limit(account)
            spent = (st.spent if st.day == self.local(now)[2] else 0.0) + running
            if spent > limit:
                msg = f"{spent:.2f} spent today with running calls (daily limit {limit:.2f})"
                for call in live:
                    hits.append(self._hit(self.spend, call, msg, [*st.spend_calls, call.uid]))
        return hits

    def seen_address(self, account: str, ip: str, now: float, uid: str = "") -> list[Hit]:
        """An account registered, authenticated or called from `ip`."""
        if not account:
            return []
        country = self.ip_country(ip)
        if not country:
            return []  # private or unknown: nothing to compare
        hits: list[Hit] = []
        self.state(account)  # the account is known from here on (expire, baseline)
        probe = Call(uid or f"{account}@{ip}", account, "", now, now)
        try:
            addr = ip_address(ip)
        except ValueError:
            addr = None
        point = self.points.get(country)
        seen = Event(
            time=now,
            kind=Kind.AUTH_SUCCESS,
            service=Service.UNKNOWN,
            ip=addr,
            account=account,
            call=CallInfo(uid=probe.uid, start=now, end=now, ip_country=country, ip_point=point),
        )
        spec = self.config.rules["address_country"]
        if spec.enabled:
            for f in self._address.feed(seen, now):
                hits.append(self._hit(spec, probe, f.reason, list(f.calls), f.ip))
        spec = self.config.rules["distant_registrations"]
        # The kind always remembers the sighting (as before): enabling it later sees history.
        found = self._distant.feed(seen, now)
        if spec.enabled:
            for f in found:
                hits.append(self._hit(spec, probe, f.reason, list(f.calls)))
        return hits

    def expire(self, now: float, idle: float = 2 * 86400) -> int:
        """Forget accounts idle for `idle` seconds (keeping learned countries). Returns count."""
        gone = [a for a, st in self.accounts.items() if now - st.last > idle and not st.active]
        for a in gone:
            st = self.accounts[a]
            st.starts.clear()
            st.intervals.clear()
            st.ranges.clear()
            self._distant.forget(a)
        return len(gone)

    def baseline(self) -> dict[str, list[str]]:
        return {a: sorted(st.countries) for a, st in self.accounts.items() if st.countries}

    def load_baseline(self, data: dict[str, list[str]]) -> None:
        for account, countries in data.items():
            self.state(str(account)).countries.update(str(c) for c in countries)
        self.learn_until = float("-inf")

    def inbound_call(self, call: Call) -> list[Hit]:
        """An inbound call (from a trunk or in an inbound context), counted per `call.account`
        (the trunk): more than `max_calls` in `window` is a separate, lower-severity signal.
        Never charged to an account, so its hits carry the rule's own (low) severity."""
        spec = self.config.rules.get("inbound_volume")
        if spec is None or not spec.enabled or not call.account:
            return []
        window, most = float(spec["window"]), int(spec["max_calls"])
        starts = self._inbound.get(call.account)
        if starts is None:
            if len(self._inbound) >= MAX_RANGES:  # bounded: a flood of names evicts the oldest
                del self._inbound[next(iter(self._inbound))]
            starts = self._inbound[call.account] = []
        starts.append((call.start, call.uid))
        horizon = call.start - window
        while starts[0][0] < horizon:
            del starts[0]
        if len(starts) <= most:
            return []
        msg = f"{len(starts)} inbound calls in {window:.0f}s on {call.account} (max {most})"
        hit = self._hit(spec, call, msg, [u for _, u in starts])
        del starts[0]  # keeps the window bounded during a flood
        return [hit]

    # --- rules -----------------------------------------------------------------------------------

    def _at_start(self, call: Call, info: DestInfo, st: AccountState) -> list[Hit]:
        hits: list[Hit] = []
        t = call.start
        if t > st.last:
            st.last = t
        self.calls_seen += 1
        if self.learn_until is None:
            self.learn_until = t + float(self.new_country["learn_seconds"])

        if self.velocity.enabled:
            starts = st.starts
            starts.append((t, call.uid))
            horizon = t - self._vel_window
            while starts[0][0] < horizon:
                del starts[0]
            if len(starts) > self._vel_max:
                msg = f"{len(starts)} calls in {self._vel_window:.0f}s (max {self._vel_max})"
                hits.append(self._hit(self.velocity, call, msg, [u for _, u in starts]))
                del starts[0]  # keeps the window bounded during a flood

        dest = info.dest
        if info.risky and self.risky_destination.enabled:
            for f in self._risky.feed(self.event(call, info), t):
                spec, calls = self.risky_destination, list(f.calls)
                hits.append(self._hit(spec, call, f.reason, calls, dest=dest.e164))

        if info.after_hours and self.after_hours.enabled:
            for f in self._after_hours.feed(self.event(call, info), t):
                hits.append(self._hit(self.after_hours, call, f.reason, list(f.calls)))

        if dest.scope == "international" and dest.country not in st.countries:
            st.countries.add(dest.country)
            if self.new_country.enabled and t >= self.learn_until:
                msg = f"first call to {dest.country} ({dest.e164})"
                hits.append(self._hit(self.new_country, call, msg, [call.uid]))
        return hits

    def _at_end(self, call: Call, info: DestInfo, st: AccountState) -> list[Hit]:
        hits: list[Hit] = []
        billsec = call.billsec
        if billsec > 0 and info.rate > 0.0 and self._spend_on:
            cost = info.rate * billsec / 60.0
            slot = self._slots.get(int(call.start // 900))
            day = slot[2] if slot is not None else self.local(call.start)[2]
            if day != st.day:
                st.day, st.spent, st.spend_calls = day, 0.0, []
            st.spent += cost
            st.spend_calls.append(call.uid)
            if len(st.spend_calls) > MAX_EVIDENCE:
                del st.spend_calls[0]
            limit = self._daily_limit(call.account)
            if st.spent > limit:
                msg = f"{st.spent:.2f} spent today (daily limit {limit:.2f}); this call {cost:.2f}"
                hits.append(self._hit(self.spend, call, msg, st.spend_calls))

        if billsec <= self._short_max and self.short_burst.enabled:
            end = call.end if call.end is not None else call.start
            rng = info.range_key
            q = st.ranges.get(rng)
            if q is None:
                if len(st.ranges) >= MAX_RANGES:
                    del st.ranges[next(iter(st.ranges))]
                q = st.ranges[rng] = []
            q.append((end, call.uid))
            edge = end - self._short_window
            while q[0][0] < edge:
                del q[0]
            spec = self.short_burst
            if len(q) >= spec["min_calls"]:
                digits = int(spec["range_digits"])
                msg = (
                    f"{len(q)} calls of <= {self._short_max:.0f}s to {rng}{'X' * digits} "
                    f"in {self._short_window:.0f}s"
                )
                hits.append(self._hit(spec, call, msg, [u for _, u in q]))
                del q[0]
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
        uids = [u for _, _, u in sorted(best)]
        return [self._hit(self.concurrent, call, f"{len(best)} calls at once (max {limit})", uids)]
