"""The overview the dashboard pushes: built from what the daemon's commands answer (`status`,
`ban_summary`) and the live counters, so the page shows exactly what `sipguard status` would."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from sipguard.core import Decision, Network
from sipguard.report.html import country
from sipguard.web.live import LiveStats

TOP = 15
BanView = Callable[[Decision, float], dict[str, object]]  # one ban as the `bans` command shows it


class BanSummary:
    """What the overview shows of the active bans, without a row for each: their number, counts
    by origin and by country, and the `top` most recent as rows. Made every push interval, so
    it stays cheap with thousands of bans (a feed's): one pass, each ban's country looked up
    once while it is active, and rows (`view`, the `bans` command's) for the recent ones only."""

    def __init__(self, view: BanView) -> None:
        self.view = view
        self._country: dict[Network, str] = {}

    def __call__(self, bans: Collection[Decision], now: float, top: int = TOP) -> dict[str, Any]:
        if len(self._country) > 2 * len(bans) + 1000:  # bans ended: forget their countries
            self._country.clear()
        by_origin: Counter[str] = Counter()
        countries: Counter[str] = Counter()
        for d in bans:
            by_origin[d.origin or "local"] += 1
            cc = self._country.get(d.network)
            if cc is None:
                cc = self._country[d.network] = country(str(d.network)) or "??"
            countries[cc] += 1
        recent = heapq.nlargest(top, bans, key=lambda d: d.start)  # ties: in the given order
        return {
            "active": len(bans),
            "by_origin": dict(sorted(by_origin.items())),
            "countries": dict(countries.most_common(top)),
            "recent": [self.view(d, now) for d in recent],
        }


def search(rows: list[dict[str, Any]], query: str, limit: int = 500) -> list[dict[str, Any]]:
    """Rows any of whose text values contain `query` (case-insensitive), at most `limit`."""
    q = query.strip().lower()[:100]
    out = []
    for row in rows:
        if not q or any(q in str(v).lower() for v in row.values() if isinstance(v, str)):
            out.append(row)
            if len(out) >= limit:
                break
    return out


def build_overview(
    status: dict[str, Any], bans: dict[str, Any], live: LiveStats, now: float
) -> dict[str, Any]:
    """`bans`: a `BanSummary` of the active bans."""
    series = live.snapshot(now)
    top = live.top_sources(now, TOP)
    for row in top:
        row["country"] = country(str(row["source"]))
    return {
        "time": now,
        "active_bans": bans["active"],
        "bans_by_origin": bans["by_origin"],
        "countries": bans["countries"],
        "top_sources": top,
        "recent_bans": [
            {k: b.get(k) for k in ("network", "rule", "reason", "origin", "start", "remaining")}
            for b in bans["recent"]
        ],
        **series,
        "health": {
            "watching": status.get("watching", []),
            "warning": status.get("watch_warning"),
            "sources": status.get("sources", {}),
            "queue": status.get("queue", {}),
            "firewall_errors": (status.get("firewall") or {}).get("errors", 0),
            "fraud": status.get("fraud", {}),
            "uptime": status.get("uptime"),
            "version": status.get("version"),
            "simulate": status.get("simulate"),
            "backend": status.get("backend"),
        },
        "recent_alerts": status.get("recent_alerts", []),
    }
