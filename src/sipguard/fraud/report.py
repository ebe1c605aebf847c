"""Hits to incidents: one alert per (rule, account) while the rule keeps firing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sipguard.fraud.model import SEVERITIES, Hit

MAX_CALLS_PER_ALERT = 200


@dataclass(slots=True)
class Incident:
    rule: str
    account: str
    severity: str
    reason: str  # the first hit's reason: what crossed the line
    first: float
    last: float
    calls: list[str] = field(default_factory=list)
    hits: int = 0
    ip: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "rule": self.rule,
            "severity": self.severity,
            "calls": list(self.calls),
            "reason": self.reason,
            "first": self.first,
            "last": self.last,
            "hits": self.hits,
        }


class AlertBook:
    """Merges hits of the same rule and account that come within `gap` seconds of each other."""

    def __init__(self, gap: float = 86400.0) -> None:
        self.gap = gap
        self.incidents: list[Incident] = []
        self._open: dict[tuple[str, str], Incident] = {}

    def add(self, hit: Hit) -> Incident | None:
        """Record a hit; returns the incident when this hit opened a new one (notify on that)."""
        key = (hit.rule, hit.account)
        inc = self._open.get(key)
        new = None
        if inc is None or hit.time - inc.last > self.gap:
            inc = Incident(
                hit.rule, hit.account, hit.severity, hit.reason, hit.time, hit.time, ip=hit.ip
            )
            self._open[key] = inc
            self.incidents.append(inc)
            new = inc
        inc.last = max(inc.last, hit.time)
        inc.hits += 1
        if SEVERITIES.index(hit.severity) > SEVERITIES.index(inc.severity):
            inc.severity = hit.severity
        seen = set(inc.calls)
        for uid in hit.calls:
            if uid not in seen and len(inc.calls) < MAX_CALLS_PER_ALERT:
                inc.calls.append(uid)
                seen.add(uid)
        return new

    def sorted(self) -> list[Incident]:
        return sorted(self.incidents, key=lambda i: (i.first, i.account, i.rule))


@dataclass(slots=True)
class ScanResult:
    incidents: list[Incident]
    rows: int = 0
    calls: int = 0  # external calls the rules looked at
    errors: Counter[str] = field(default_factory=Counter)
    parsed: int = 0  # rows that read as calls: 0 of many rows means the input is not CDRs
