"""The `[notify]` table: where messages go, for which kinds and from which severity.

[notify]
digest_interval = 60          # bans: at most one digest message this often (seconds)
log_silence = 600             # a followed log not growing this long while Asterisk runs
queue_size = 1000             # messages waiting to be sent; beyond that they are dropped
retries = 4                   # sends retried with backoff before a message counts failed

[[notify.route]]
urls = ["mailtos://user:pass@example.org"]   # apprise URLs
kinds = ["ban", "attack", "fraud"]           # default: every kind
min_severity = "medium"                       # default: low (everything)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: ban = the digest; attack = a distributed attack on an account; source = a source stopped;
#: kernel = the kernel refused a change; fleet = the fleet disconnected
KINDS = ("ban", "attack", "fraud", "source", "kernel", "fleet")
SEVERITIES = ("low", "medium", "high", "critical")
MAX_URLS = 50


@dataclass(frozen=True)
class Route:
    urls: tuple[str, ...]
    kinds: frozenset[str] = frozenset(KINDS)
    min_severity: str = "low"

    def wants(self, kind: str, severity: str) -> bool:
        return kind in self.kinds and rank(severity) >= rank(self.min_severity)


@dataclass(frozen=True)
class NotifyConfig:
    routes: tuple[Route, ...] = ()
    digest_interval: float = 60.0
    log_silence: float = 600.0
    queue_size: int = 1000
    retries: int = 4
    backoff: float = 1.0  # first retry after this, doubling (tests shorten it)

    def wants(self, kind: str, severity: str) -> bool:
        return any(r.wants(kind, severity) for r in self.routes)


def rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES) - 1


_NUMBERS = {
    "digest_interval": float,
    "log_silence": float,
    "queue_size": int,
    "retries": int,
    "backoff": float,
}


def parse_notify(raw: Mapping[str, Any]) -> NotifyConfig:
    """Validate the table; ValueError("notify.KEY: reason") names the key at fault."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "route":
            continue
        if key not in _NUMBERS:
            known = ", ".join(sorted([*_NUMBERS, "route"]))
            raise ValueError(f"notify.{key}: unknown key (expected one of: {known})")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"notify.{key}: expected a non-negative number")
        values[key] = _NUMBERS[key](value)
    if values.get("queue_size", 1) < 1:
        raise ValueError("notify.queue_size: must be at least 1")
    routes = raw.get("route", [])
    if not isinstance(routes, list):
        raise ValueError("notify.route: expected an array of tables ([[notify.route]])")
    return NotifyConfig(routes=tuple(_route(r, i) for i, r in enumerate(routes)), **values)


def _route(raw: Any, i: int) -> Route:
    where = f"notify.route[{i}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table")
    unknown = set(raw) - {"urls", "kinds", "min_severity"}
    if unknown:
        raise ValueError(f"{where}.{sorted(unknown)[0]}: unknown key (urls, kinds, min_severity)")
    urls = raw.get("urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) for u in urls):
        raise ValueError(f"{where}.urls: expected a non-empty list of apprise URLs")
    if len(urls) > MAX_URLS:
        raise ValueError(f"{where}.urls: more than {MAX_URLS} URLs")
    kinds = raw.get("kinds", list(KINDS))
    if not isinstance(kinds, list) or not all(k in KINDS for k in kinds):
        raise ValueError(f"{where}.kinds: expected a list of {', '.join(KINDS)}")
    severity = raw.get("min_severity", "low")
    if severity not in SEVERITIES:
        raise ValueError(f"{where}.min_severity: must be one of {', '.join(SEVERITIES)}")
    return Route(tuple(urls), frozenset(kinds), severity)
