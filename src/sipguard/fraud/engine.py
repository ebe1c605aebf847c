"""The fraud edge: classifies each call's destination and drives the fraud rule kinds.

No I/O and no clock: every input brings its own time. The detectors are rule kinds in
`detect/` (`fraudkinds`, `fraudcounts`, `fraudledger`), each with its own state; the edge's
`CallFacts` (fraud/facts.py) computes the facts they read (destination, rate, number range,
the office's local time, the caller's country), and this engine drives the kinds and turns
what they find into `Hit`s naming the calls. One engine serves both paths:
- offline (CDR rows, written when a call ends): `check(records)`, the one row loop (`fraud
  scan`, `--jobs`, the live CDR follower); `cdr_call(call)` runs one record through it;
- live (AMI): `call_started` at the dial, `call_ended` at the hangup, `tick(now)` for running
  costs, `seen_address` for registrations and authentications.
Merging hits into incidents is the report's job (`fraud.report.AlertBook`), acting on them
the watcher's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from ipaddress import ip_address

from sipguard.core.events import CallInfo, Event, Kind, Service
from sipguard.detect.findings import MAX_EVIDENCE, Finding, FraudKind
from sipguard.detect.fraudcounts import Concurrent, InboundVolume, ShortBurst, Velocity
from sipguard.detect.fraudkinds import (
    AddressCountry,
    AfterHours,
    DistantRegistrations,
    RiskyDestination,
    distance_km,
)
from sipguard.detect.fraudledger import NewCountry, Spend
from sipguard.fraud.classify import Classifier
from sipguard.fraud.config import FraudConfig, RuleSpec
from sipguard.fraud.facts import CallFacts
from sipguard.fraud.model import Call, Hit
from sipguard.fraud.state import AccountState, DestInfo
from sipguard.fraud.tables import RateTable

_UNSEEN = object()
# A CDR record as the row loop reads it (fraud.cdr.CallTuple; a live record's billsec may
# carry a fraction): (line, account, dst, start, end, billsec, answered, channel, uid, ip,
# inbound); an inbound call's account is its trunk.
Row = tuple[int, str, str, float, float | None, float, bool, str, str, str, bool]
_Fired = Sequence[tuple[RuleSpec, Sequence[Finding], str]]  # (rule, findings, dest)
_NONE_FIRED: _Fired = ()

__all__ = ["MAX_EVIDENCE", "FraudEngine", "distance_km"]


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
        self.calls_seen = 0
        self.facts = CallFacts(config, classifier, self.rates, country_of_ip)
        self.local, self.info, self.event = self.facts.local, self.facts.info, self.facts.event
        self.ip_country, self.add_hotlist = self.facts.ip_country, self.facts.add_hotlist
        self.wanted, self.outbound = self.facts.wanted, self.facts.outbound
        self.cdr_parser = self.facts.cdr_parser
        r = config.rules
        self.velocity, self.concurrent = r["velocity"], r["concurrent"]
        self.after_hours, self.new_country = r["after_hours"], r["new_country"]
        self.spend, self.short_burst = r["spend"], r["short_burst"]
        self.risky_destination = r["risky_destination"]
        # The detectors: rule kinds of detect/, the accounts' own limits handed in as data.
        policies = config.accounts.items()
        most = {a: p.max_concurrent for a, p in policies if p.max_concurrent is not None}
        limits = {a: p.daily_limit for a, p in policies if p.daily_limit is not None}
        own = {a: p.countries for a, p in policies if p.countries}
        self._risky = RiskyDestination(self.risky_destination.params)
        self._after_hours = AfterHours(self.after_hours.params)
        self._address = AddressCountry(r["address_country"].params, own)
        self._distant = DistantRegistrations(r["distant_registrations"].params)
        self._velocity = Velocity(self.velocity.params)
        self._concurrent = Concurrent(self.concurrent.params, most)
        self._short = ShortBurst(self.short_burst.params)
        self._spend = Spend(self.spend.params, limits)
        self._new_country = NewCountry(self.new_country.params)
        inbound = r.get("inbound_volume")
        self._inbound = InboundVolume(inbound.params if inbound is not None else {})

    # --- helpers -------------------------------------------------------------------------------

    @property
    def learn_until(self) -> float | None:
        """The end of the new-country learning period (None: no call yet; -inf: a baseline)."""
        return self._new_country.learn_until

    @learn_until.setter
    def learn_until(self, value: float | None) -> None:
        self._new_country.learn_until = value

    def start_learning(self, t: float) -> None:
        """The first call at `t` starts the learning period (the parallel scan's parent)."""
        self._new_country.learn_from(t)

    def live_calls(self, account: str) -> int:
        """The account's live calls the concurrency rule counts."""
        return self._concurrent.live_calls(account)

    def state_sizes(self) -> dict[str, int]:
        """Entries each detector keeps (status, and tests that state stays bounded)."""
        kinds: dict[str, FraudKind] = {
            "velocity": self._velocity,
            "concurrent": self._concurrent,
            "short_burst": self._short,
            "spend": self._spend,
            "new_country": self._new_country,
            "distant_registrations": self._distant,
            "inbound_volume": self._inbound,
        }
        return {name: kind.state_size() for name, kind in kinds.items()}

    def state(self, account: str) -> AccountState:
        st = self.accounts.get(account)
        if st is None:
            st = self.accounts[account] = AccountState()
        return st

    def _hit(
        self,
        spec: RuleSpec,
        call: Call,
        reason: str,
        calls: Sequence[str],
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

    def _hits(self, call: Call, fired: _Fired) -> list[Hit]:
        """What the kinds found on `call`, as hits of their rules."""
        return [
            self._hit(spec, call, f.reason, f.calls, f.ip, dest)
            for spec, found, dest in fired
            for f in found
        ]

    # --- entry points --------------------------------------------------------------------------

    def cdr_call(self, call: Call) -> list[Hit]:
        """A finished call's record (a CDR row, AMI `Cdr`): every rule, through `check`."""
        if self.wanted(call) is None:
            return []
        row: Row = (
            call.line_no, call.account, call.dst, call.start, call.end, call.billsec,
            call.answered, call.channel, call.uid, call.ip, False,
        )  # fmt: skip
        return self.check((row,), "")

    def check(
        self,
        records: Iterable[Row],
        source: str,
        offset: int = 0,
        on_hit: Callable[[Hit], object] | None = None,
    ) -> list[Hit]:
        """CDR records (`CdrParser.records`) through every rule, in order.

        The one row loop. Most records change a few counters and fire nothing: each kind's
        typed entry does its bookkeeping and returns the shared empty tuple, and only a record
        on which something fired becomes a `Call` and `Hit`s. A destination that is risky or
        called after hours, or a caller's address with a country, takes the (rarer) Event
        path of those kinds. An inbound call only counts on its trunk (`inbound_volume`), as
        the live tracker counts one. Hits go to `on_hit` when given, else are returned. `offset`
        shifts the records' line numbers (the parallel scan's ranges); a record without a
        uniqueid is named `source:line` (`source` "": it stays unnamed).
        """
        out: list[Hit] = []
        report = on_hit or out.append
        facts, accounts, new_state = self.facts, self.accounts, self.state
        infos, info_of, slots, local = facts.destinations, facts.info, facts.slots, facts.local
        ip_cc, flagged = facts.countries, self._flagged
        vel, conc, spend, short = self.velocity, self.concurrent, self.spend, self.short_burst
        counted, finished = self._velocity.count, self._concurrent.finished
        billed, short_call = self._spend.billed, self._short.short_call
        vel_on, conc_on, spend_on, short_on = (
            vel.enabled,
            conc.enabled,
            spend.enabled,
            short.enabled,
        )
        short_max, outside = self._short.max_seconds, self._after_hours.outside
        hours_on, risky_on = self.after_hours.enabled, self.risky_destination.enabled
        new_country, nc_spec = self._new_country, self.new_country
        dialled, nc_on = new_country.dialled, nc_spec.enabled
        learning = new_country.learn_until is None  # until the first call starts learning
        none_fired, seen = _NONE_FIRED, 0
        lo, hi, slot = 1.0, 0.0, (0, 0, 0)  # the quarter hour [lo, hi) whose local time is `slot`
        for line, account, dst, start, end, billsec, disp, chan, uid, ip, came_in in records:
            if not uid and source:
                uid = f"{source}:{line + offset}"
            if came_in:  # a call to the office's DID: never an account's, counted per trunk
                for hit in self.inbound_call(Call(uid, account, dst, start)):
                    report(hit)
                continue
            try:  # subscripts, not .get(): this loop runs for millions of rows
                info = infos[dst]
            except KeyError:
                info = info_of(dst)
            try:
                st = accounts[account]
            except KeyError:
                st = new_state(account)
            if start > st.last:
                st.last = start
            seen += 1
            if learning:
                new_country.learn_from(start)
                learning = False
            if not lo <= start < hi:  # rows in hangup order: mostly the same quarter hour
                key = int(start // 900)
                try:
                    slot = slots[key]
                except KeyError:
                    local(start)  # fills the cache
                    slot = slots[key]
                lo = key * 900
                hi = lo + 900
            end_t = end if end is not None else start
            # What the kinds found, in the rules' order (velocity, risky, after hours, new
            # country, concurrent, spend, short burst); a shared empty tuple until one fires.
            fired = none_fired
            if vel_on and (f := counted(account, start, uid)):
                fired = [(vel, f, "")]
            call = None
            if (info.risky and risky_on) or (
                info.after_hours and hours_on and outside(slot[0], slot[1] + int(start - lo) // 60)
            ):
                call = Call(uid, account, dst, start, end, billsec, disp, chan, ip, line + offset)
                fired = [*fired, *flagged(call, info)]
            if info.country and nc_on:
                if f := dialled(account, info.country, start, uid, info.dest.e164):
                    fired = [*fired, (nc_spec, f, "")]
            elif info.country:  # learned even when the rule is off (enabling it knows them)
                dialled(account, info.country, start, uid, info.dest.e164)
            if conc_on and (f := finished(account, start, end_t, uid)):
                fired = [*fired, (conc, f, "")]
            if (
                billsec > 0
                and spend_on
                and (rate := info.rate) > 0.0
                and (f := billed(account, slot[2], rate, billsec, uid))
            ):
                fired = [*fired, (spend, f, "")]
            if (
                billsec <= short_max
                and short_on
                and (f := short_call(account, end_t, info.range_key, uid))
            ):
                fired = [*fired, (short, f, "")]
            if fired:
                if call is None:
                    line += offset
                    call = Call(uid, account, dst, start, end, billsec, disp, chan, ip, line)
                for hit in self._hits(call, fired):
                    report(hit)
            if ip and ip_cc.get(ip, _UNSEEN) is not None:  # unseen, or with a country
                for hit in self.seen_address(account, ip, start, uid):
                    report(hit)
        self.calls_seen += seen
        return out

    def _flagged(self, call: Call, info: DestInfo) -> _Fired:
        """The per-call kinds on a risky or after-hours-scoped destination (their Event)."""
        event = self.event(call, info)
        fired: list[tuple[RuleSpec, Sequence[Finding], str]] = []
        if info.risky and self.risky_destination.enabled:
            found = self._risky.feed(event, call.start)
            fired.append((self.risky_destination, found, info.dest.e164))
        if info.after_hours and self.after_hours.enabled:
            fired.append((self.after_hours, self._after_hours.feed(event, call.start), ""))
        return fired

    def call_started(self, call: Call) -> list[Hit]:
        """A live call is being dialled (AMI DialBegin)."""
        info = self.wanted(call)
        if info is None:
            return []
        st = self.state(call.account)
        if call.start > st.last:
            st.last = call.start
        self.calls_seen += 1
        account, t, uid = call.account, call.start, call.uid
        self._new_country.learn_from(t)
        fired: list[tuple[RuleSpec, Sequence[Finding], str]] = []
        if self.velocity.enabled:
            fired.append((self.velocity, self._velocity.count(account, t, uid), ""))
        if info.special:
            fired += self._flagged(call, info)
        if info.country:  # learned even when the rule is off: enabling it later knows them
            found = self._new_country.dialled(account, info.country, t, uid, info.dest.e164)
            fired.append((self.new_country, found if self.new_country.enabled else (), ""))
        st.active[uid] = call
        if self.concurrent.enabled:
            fired.append((self.concurrent, self._concurrent.started(account, t, uid), ""))
        if self.spend.enabled:
            self._spend.dialled(account, uid, info.rate)
            if call.answered:
                self._spend.answered(account, uid, call.answer or t)
        hits = self._hits(call, fired)
        if call.ip:
            hits += self.seen_address(account, call.ip, t, uid)
        return hits

    def call_answered(self, call: Call) -> None:
        """A live call was answered (`call.answer` set): its running cost starts."""
        self._spend.answered(call.account, call.uid, call.answer or call.start)

    def call_ended(self, call: Call) -> list[Hit]:
        """A live call hung up; `call.end` and `call.billsec` are set."""
        st = self.accounts.get(call.account)
        if st is not None:
            st.active.pop(call.uid, None)
        self._concurrent.hung_up(call.account, call.uid)
        self._spend.hung_up(call.account, call.uid)
        info = self.wanted(call)
        if info is None or st is None:
            return []
        fired: list[tuple[RuleSpec, Sequence[Finding], str]] = []
        if call.billsec > 0 and info.rate > 0.0 and self.spend.enabled:
            day = self.local(call.start)[2]
            found = self._spend.billed(call.account, day, info.rate, call.billsec, call.uid)
            fired.append((self.spend, found, ""))
        if call.billsec <= self._short.max_seconds and self.short_burst.enabled:
            end = call.end if call.end is not None else call.start
            found = self._short.short_call(call.account, end, info.range_key, call.uid)
            fired.append((self.short_burst, found, ""))
        return self._hits(call, fired)

    def tick(self, now: float) -> list[Hit]:
        """Running cost of answered live calls: hang up before the bill grows further."""
        if not self.spend.enabled or not self.rates.rates:
            return []
        hits = []
        for f in self._spend.tick(now, self.local(now)[2]):
            call = self.accounts[f.account].active.get(f.calls[-1])  # the running call, last
            if call is not None:
                hits.append(self._hit(self.spend, call, f.reason, f.calls))
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
                hits.append(self._hit(spec, probe, f.reason, f.calls, f.ip))
        spec = self.config.rules["distant_registrations"]
        # The kind always remembers the sighting (as before): enabling it later sees history.
        found = self._distant.feed(seen, now)
        if spec.enabled:
            for f in found:
                hits.append(self._hit(spec, probe, f.reason, f.calls))
        return hits

    def expire(self, now: float, idle: float = 2 * 86400) -> int:
        """Forget accounts idle for `idle` seconds (keeping learned countries). Returns count."""
        gone = [a for a, st in self.accounts.items() if now - st.last > idle and not st.active]
        for a in gone:
            self._velocity.forget(a)
            self._concurrent.forget(a)
            self._short.forget(a)
            self._distant.forget(a)
        return len(gone)

    def baseline(self) -> dict[str, list[str]]:
        return self._new_country.baseline()

    def load_baseline(self, data: dict[str, list[str]]) -> None:
        for account in data:
            self.state(str(account))
        self._new_country.load_baseline(data)

    def inbound_call(self, call: Call) -> list[Hit]:
        """An inbound call (from a trunk or in an inbound context), counted per `call.account`
        (the trunk): more than `max_calls` in `window` is a separate, lower-severity signal.
        Never charged to an account, so its hits carry the rule's own (low) severity."""
        spec = self.config.rules.get("inbound_volume")
        if spec is None or not spec.enabled or not call.account:
            return []
        found = self._inbound.count(call.account, call.start, call.uid)
        return self._hits(call, [(spec, found, "")])
