"""The overview the dashboard pushes: built from what the daemon's commands answer (`status`,
`bans`) and the live counters, so the page shows exactly what `sipguard status` would."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sipguard.report.html import country
from sipguard.web.live import LiveStats

TOP = 15


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
    status: dict[str, Any], bans: list[dict[str, Any]], live: LiveStats, now: float
) -> dict[str, Any]:
    series = live.snapshot(now)
    by_origin = Counter(str(b.get("origin") or "local") for b in bans)
    countries = Counter(country(str(b["network"])) or "??" for b in bans)
    top = live.top_sources(now, TOP)
    for row in top:
        row["country"] = country(str(row["source"]))
    recent = sorted(bans, key=lambda b: -float(b.get("start") or 0))[:TOP]
    return {
        "time": now,
        "active_bans": len(bans),
        "bans_by_origin": dict(sorted(by_origin.items())),
        "countries": dict(countries.most_common(TOP)),
        "top_sources": top,
        "recent_bans": [
            {k: b.get(k) for k in ("network", "rule", "reason", "origin", "start", "remaining")}
            for b in recent
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
