"""`[[feeds]]` tables -> FeedConfig. Each problem is one ConfigError naming the file, the key
(`feeds.NAME.KEY`) and the reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sipguard.config.errors import ConfigError
from sipguard.policy.guard import MAX_ENTRIES

KINDS = ("apiban", "plain", "crowdsec")
NAME = re.compile(r"[a-z][a-z0-9_]{0,14}")  # fits nft set and ipset names with a suffix
APIBAN_URL = "https://apiban.org"
_KEYS = {
    "name",
    "kind",
    "url",
    "file",
    "key_file",
    "interval",
    "max_entries",
    "max_bytes",
    "timeout",
    "enabled",
}
MAX_FEEDS = 32


@dataclass(frozen=True)
class FeedConfig:
    name: str
    kind: str
    url: str = ""  # plain: the list's URL; apiban: the API base; crowdsec: the LAPI base
    file: str = ""  # plain: a local file instead of a URL
    key_file: str = ""  # apiban: the API key; crowdsec: the bouncer's X-Api-Key
    interval: float = 300.0  # seconds between refreshes
    max_entries: int = 100_000  # valid entries kept; the rest are counted and skipped
    max_bytes: int = 8 * 1024 * 1024  # a larger body is refused (the last good list stays)
    timeout: float = 20.0  # seconds for one HTTP request
    enabled: bool = True

    @property
    def origin(self) -> str:
        return f"blocklist:{self.name}"


_NUMBERS: dict[str, tuple[type, float, float]] = {
    "interval": (float, 1.0, 7 * 86400.0),
    "max_entries": (int, 1, MAX_ENTRIES),  # what the enforcer takes in one request
    "max_bytes": (int, 1024, 256 * 1024 * 1024),
    "timeout": (float, 0.1, 600.0),
}


def parse_feeds(raw: object, file: str) -> list[FeedConfig]:
    if not raw:
        return []
    if not isinstance(raw, list):
        raise ConfigError(file, "feeds", "expected an array of tables ([[feeds]])")
    if len(raw) > MAX_FEEDS:
        raise ConfigError(file, "feeds", f"{len(raw)} feeds (at most {MAX_FEEDS})")
    out: list[FeedConfig] = []
    for i, table in enumerate(raw):
        feed = parse_feed(table, file, f"feeds[{i}]")
        if any(f.name == feed.name for f in out):
            raise ConfigError(file, f"feeds.{feed.name}", "a second feed with this name")
        out.append(feed)
    return out


def parse_feed(table: object, file: str, where: str) -> FeedConfig:
    if not isinstance(table, dict):
        raise ConfigError(file, where, "expected a table")
    name = table.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(file, f"{where}.name", "a lower-case letter then up to 14 [a-z0-9_]")
    at = f"feeds.{name}"
    extra = sorted(set(table) - _KEYS)
    if extra:
        raise ConfigError(file, f"{at}.{extra[0]}", f"unknown key (expected {', '.join(_KEYS)})")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(file, f"{at}.kind", f"must be one of {', '.join(KINDS)}")
    kw: dict[str, Any] = {"name": name, "kind": kind}
    for key in ("url", "file", "key_file"):
        value = table.get(key, "")
        if not isinstance(value, str):
            raise ConfigError(file, f"{at}.{key}", "expected a string")
        kw[key] = value
    for key, (typ, lo, hi) in _NUMBERS.items():
        if key not in table:
            continue
        value = table[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or (typ is int and not isinstance(value, int)):
            raise ConfigError(file, f"{at}.{key}", f"expected {typ.__name__}")
        if not lo <= value <= hi:
            raise ConfigError(file, f"{at}.{key}", f"must be between {lo:g} and {hi:g}")
        kw[key] = typ(value)
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise ConfigError(file, f"{at}.enabled", "expected a boolean")
        kw["enabled"] = table["enabled"]
    _check_source(kw, file, at)
    return FeedConfig(**kw)


def _check_source(kw: dict[str, Any], file: str, at: str) -> None:
    kind, url, path = kw["kind"], kw["url"], kw["file"]
    if kind == "apiban" and not url:
        kw["url"] = url = APIBAN_URL
    if kind == "plain":
        if bool(url) == bool(path):
            raise ConfigError(file, f"{at}.url", "a plain list needs exactly one of url, file")
    elif path:
        raise ConfigError(file, f"{at}.file", f"a {kind} feed is read over HTTP (url)")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(file, f"{at}.url", f"not an http(s) URL: {url[:80]!r}")
    if kind in ("apiban", "crowdsec") and not kw["key_file"]:
        raise ConfigError(file, f"{at}.key_file", f"a {kind} feed needs its key in a file")
