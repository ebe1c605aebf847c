"""Hits to incidents: one alert per (rule, account) while the rule keeps firing."""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

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

    def to_dict(self) -> dict[str, object]:
        """`sipguard fraud scan --format json`'s report."""
        return {
            "alerts": [i.to_dict() for i in self.incidents],
            "rows": self.rows,
            "calls": self.calls,
            "malformed": dict(self.errors),
        }

    def text(self, width: int) -> str:
        """The human report: a summary, then one block per alert wrapped to `width` columns;
        nothing is cut (`to_dict` for machines)."""
        malformed = sum(self.errors.values())
        summary = (
            f"{self.rows} rows, {self.calls} outbound calls checked, "
            f"{malformed} malformed rows, {len(self.incidents)} alerts"
        )
        out = [textwrap.fill(summary, width)]

        def block(label: str, text: str) -> str:
            return textwrap.fill(
                text,
                width,
                initial_indent=f"  {label:<8}",
                subsequent_indent=" " * 10,
                break_long_words=True,
                break_on_hyphens=False,
            )

        for inc in self.incidents:
            when = datetime.fromtimestamp(inc.first, UTC).strftime("%Y-%m-%d %H:%M UTC")
            head = f"{when}  {inc.severity.upper()}  {inc.rule}  account {inc.account}"
            out.append("")
            out.append(textwrap.fill(head, width, subsequent_indent="  "))
            out.append(block("reason", inc.reason))
            out.append(block("calls", f"({len(inc.calls)}) " + " ".join(inc.calls)))
        return "\n".join(out)
