"""The facts the fraud edge puts on a call before the rule kinds see it.

The destination (classified once per dialled string: country, type, risk, rate, number
range), whether the rules look at a call at all (outbound, a real account: also the CDR
parser's filter), the office's local time of a moment (cached per quarter hour), the caller's
country (cached per address), and the call as the detect/ kinds read it: an Event whose
`CallInfo` carries all of that. Kept apart from the engine that drives the kinds
(`fraud.engine`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from sipguard.core.events import CallInfo, Event, Kind, Service
from sipguard.fraud.cdr import CdrParser
from sipguard.fraud.classify import Classifier
from sipguard.fraud.config import FraudConfig
from sipguard.fraud.model import Call
from sipguard.fraud.state import DestInfo
from sipguard.fraud.tables import RateTable

MAX_DESTINATIONS = 262_144  # dialled strings whose facts are cached (then the cache restarts)
MAX_SLOTS = 100_000  # quarter hours whose local time is cached
MAX_ADDRESSES = 65_536  # addresses whose country is cached


class CallFacts:
    """Destination, local time and address facts, cached; the row loop reads the caches
    (`destinations`, `slots`, `countries`) directly and fills them through the methods."""

    def __init__(
        self,
        config: FraudConfig,
        classifier: Classifier,
        rates: RateTable,
        country_of_ip: Callable[[str], str | None] | None,
    ) -> None:
        self.config = config
        self.classifier = classifier
        self.rates = rates
        self.country_of_ip = country_of_ip
        self.tz = ZoneInfo(config.timezone)
        self.destinations: dict[str, DestInfo] = {}
        self.slots: dict[int, tuple[int, int, int]] = {}  # quarter hour -> (weekday, min, day)
        self.countries: dict[str, str | None] = {}  # address -> country
        self.ignore = config.ignore_accounts | config.trunks  # a trunk's calls are inbound

    def local(self, t: float) -> tuple[int, int, int]:
        """(weekday 0=Mon, minute of day, day number) in the office's zone, cached by 15 min."""
        slot = int(t // 900)
        cached = self.slots.get(slot)
        if cached is None:
            dt = datetime.fromtimestamp(slot * 900, self.tz)
            cached = (dt.weekday(), dt.hour * 60 + dt.minute, dt.toordinal())
            if len(self.slots) > MAX_SLOTS:
                self.slots.clear()
            self.slots[slot] = cached
        wd, minute, day = cached
        return wd, minute + int(t - slot * 900) // 60, day

    def info(self, dialled: str) -> DestInfo:
        info = self.destinations.get(dialled)
        if info is None:
            rules = self.config.rules
            dest = self.classifier.classify(dialled)
            spec = rules["risky_destination"]
            why = ""
            if dest.type in spec["types"]:
                why = dest.type.replace("_", " ")
            elif spec["hotlist"] and dest.hotlist:
                why = f"hotlist range {dest.hotlist}"
            elif spec["high_risk_countries"] and dest.high_risk:
                why = f"high-risk country {dest.country}"
            digits = int(rules["short_burst"]["range_digits"])
            after = dest.in_scope(rules["after_hours"]["scopes"])
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
            if len(self.destinations) > MAX_DESTINATIONS:
                self.destinations.clear()
            self.destinations[dialled] = info
        return info

    def wanted(self, call: Call) -> DestInfo | None:
        """The destination when the call is one the rules look at (external, real account)."""
        info = self.destinations.get(call.dst) or self.info(call.dst)
        if not info.external or not call.account or call.account in self.ignore:
            return None
        return info

    def outbound(self, dst: str) -> bool:
        """Whether the rules look at a call to `dst` (the CDR loop's filter)."""
        return (self.destinations.get(dst) or self.info(dst)).external

    def cdr_parser(self, source: str) -> CdrParser:
        """A parser of one CDR source that yields only the calls the rules look at: outbound
        calls of real accounts, and inbound calls (marked, counted per trunk)."""
        cfg = self.config
        tz = cfg.cdr.timezone or cfg.timezone
        inbound = cfg.inbound_contexts
        return CdrParser(cfg.cdr, tz, source, self.outbound, self.ignore, inbound, cfg.trunks)

    def add_hotlist(self, prefix: str, label: str) -> None:
        """A hotlist range learned while running (another node's fraud range): the cached
        destination facts are dropped so the next call into it is a hotlist hit."""
        self.classifier.add_hotlist(prefix, label)
        self.destinations.clear()

    def ip_country(self, ip: str) -> str | None:
        """Country of an address (cached; None when private, unknown, or no lookup is set)."""
        if self.country_of_ip is None:
            return None
        try:
            return self.countries[ip]
        except KeyError:
            if len(self.countries) > MAX_ADDRESSES:
                self.countries.clear()
            cc = self.countries[ip] = self.country_of_ip(ip)
            return cc

    def event(self, call: Call, info: DestInfo) -> Event:
        """The call as the detect/ rule kinds read it, every fact filled in."""
        dest = info.dest
        weekday, minute, day = self.local(call.start)
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
                rate=info.rate,
                range_key=info.range_key,
                day=day,
            ),
        )


__all__ = ["CallFacts"]
