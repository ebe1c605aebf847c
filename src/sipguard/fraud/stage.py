"""The fraud stage: call events in, fraud alerts out (sans-I/O: no sockets, no clock; the time
is handed in or is the event's own).

    AMI event --core.calls.CallNormalizer--> call Event --LiveTracker/FraudEngine--> Hit
    CDR lines --CdrParser.records (the one row loop)--> FraudEngine.check ----------> Hit
    Hit --AlertBook (one incident per rule and account)--> FraudAlert (a core Alert + calls)

The daemon's processing component drives it (`daemon/fraud.py` carries the alerts out: the
policy decides hang-up, lock and ban). `Hit`, `Incident` and `AlertBook` stay inside `fraud/`:
what leaves the stage is a core `Alert`.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from dataclasses import dataclass

from sipguard.core.alerts import Alert
from sipguard.core.calls import Get
from sipguard.core.events import Event
from sipguard.fraud.cdr import CdrParser
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.model import Hit
from sipguard.fraud.report import AlertBook

RECENT_HITS = 10_000  # kept for tests and status; older ones are dropped


@dataclass(frozen=True, slots=True)
class FraudAlert:
    """One detector hit as the rest of sipguard sees it."""

    alert: Alert  # rule `fraud.<detector>`, the account, its live channels, the profile actions
    detector: str  # the detector's id (`risky_destination`): what the AstDB lock value names
    calls: tuple[str, ...]  # the uniqueids behind it, oldest first
    opens: bool  # the first hit of a new incident (rule, account): notify on it
    dest: str = ""  # E.164 number of a destination-based alert (risky destination), else ""


class FraudStage:
    def __init__(self, engine: FraudEngine, gap: float = 3600.0) -> None:
        self.engine = engine
        self.tracker = LiveTracker(engine)
        self.book = AlertBook(gap)
        self.hits: deque[Hit] = deque(maxlen=RECENT_HITS)
        self.hits_by_rule: Counter[str] = Counter()
        self._parsers: dict[str, CdrParser] = {}

    def ami(self, name: str, get: Get, now: float) -> list[FraudAlert]:
        """One AMI event (any: the call normalizer picks the call and address events)."""
        return self._alerts(self.tracker.feed(name, get, now))

    def event(self, event: Event) -> list[FraudAlert]:
        """One call event already normalized (core.calls)."""
        return self._alerts(self.tracker.on_event(event))

    def cdr(self, data: bytes, source: str, first_line_no: int) -> list[FraudAlert]:
        """Whole Master.csv lines of one followed file. Calls the AMI path already tracked live
        are skipped by uniqueid, so a call is not counted twice when both sources are on."""
        parser = self._parsers.get(source)
        if parser is None:
            parser = self._parsers[source] = self.engine.cdr_parser(source)
        text = data.decode("utf-8", "replace").splitlines(keepends=True)
        seen = self.tracker.seen_uids
        records = parser.records(csv.reader(text), first_line_no)
        return self._alerts(self.engine.check((r for r in records if r[8] not in seen), source))

    def tick(self, now: float) -> list[FraudAlert]:
        """Time passed: running costs of answered calls; idle accounts expire."""
        alerts = self._alerts(self.engine.tick(now))
        self.engine.expire(now)
        return alerts

    def _alerts(self, hits: list[Hit]) -> list[FraudAlert]:
        out: list[FraudAlert] = []
        for hit in hits:
            self.hits.append(hit)
            self.hits_by_rule[hit.rule] += 1
            opens = self.book.add(hit) is not None
            if len(self.book.incidents) > RECENT_HITS:  # the live book is bounded too
                del self.book.incidents[: RECENT_HITS // 2]
            out.append(FraudAlert(hit.to_alert(), hit.rule, hit.calls, opens, hit.dest))
        return out
