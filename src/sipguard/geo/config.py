"""The raw `[geo]` table -> GeoRules + database paths; errors name the key and the reason.

[geo]
city = "/var/lib/GeoIP/GeoLite2-City.mmdb"   # default: geoipupdate's directory, DB-IP names too
asn = "/var/lib/GeoIP/GeoLite2-ASN.mmdb"
max_speed_kmh = 900        # impossible travel; 0 turns it off
profile = "default"        # what a success outside the fence does (a ban profile)
travel_profile = "alert"
lock = false               # lock the account too (AMI)
[geo.default]              # every account without its own fence
countries = ["US"]
[geo.accounts.1001]
regions = ["US-MN"]
asns = [7922]
radius_km = 300            # around the usual locations, learned from its successes
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sipguard.detect.geofence import Fence, GeoRules
from sipguard.geo.reader import ASN_NAMES, CITY_NAMES, GEOIP_DIR, GeoError, GeoLookup, find_database

_TOP = {
    "city",
    "asn",
    "directory",
    "max_speed_kmh",
    "profile",
    "travel_profile",
    "lock",
    "default",
    "accounts",
    "enabled",
}
_FENCE = {"countries", "regions", "asns", "radius_km", "learn"}
MAX_FENCE_ITEMS = 1000


class GeoConfigError(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}")


@dataclass(frozen=True, slots=True)
class GeoConfig:
    rules: GeoRules
    city: str | None = None
    asn: str | None = None
    directory: str = str(GEOIP_DIR)

    def lookup(self, clock: Callable[[], float]) -> GeoLookup:
        """Opens the databases (configured, else the standard names); GeoError when a configured
        one is missing or unreadable."""
        d = Path(self.directory)
        lookup = GeoLookup(
            find_database(self.city, CITY_NAMES, d), find_database(self.asn, ASN_NAMES, d), clock
        )
        lookup.lookup("192.0.2.1")  # opens them now, so a broken file stops the start
        return lookup


def parse_geo(raw: dict[str, Any]) -> GeoConfig | None:
    """None when there is no [geo] table (or enabled = false): no lookups at all."""
    if not raw or raw.get("enabled") is False:
        return None
    _keys(raw, _TOP, "geo")
    accounts = raw.get("accounts", {})
    if not isinstance(accounts, dict):
        raise GeoConfigError("geo.accounts", "expected a table of accounts")
    rules = GeoRules(
        default=_fence(raw["default"], "geo.default") if "default" in raw else None,
        accounts={str(a): _fence(t, f"geo.accounts.{a}") for a, t in accounts.items()},
        max_speed_kmh=_number(raw, "max_speed_kmh", 900.0, "geo"),
        profile=_text(raw, "profile", "default"),
        travel_profile=_text(raw, "travel_profile", "alert"),
        lock=_bool(raw, "lock"),
    )
    return GeoConfig(
        rules,
        _text(raw, "city", "") or None,
        _text(raw, "asn", "") or None,
        _text(raw, "directory", str(GEOIP_DIR)),
    )


def _fence(table: Any, key: str) -> Fence:
    if not isinstance(table, dict):
        raise GeoConfigError(key, "expected a table")
    _keys(table, _FENCE, key)
    radius = table.get("radius_km")
    return Fence(
        countries=frozenset(c.upper() for c in _list(table, "countries", str, key)),
        regions=frozenset(r.upper() for r in _list(table, "regions", str, key)),
        asns=frozenset(_list(table, "asns", int, key)),
        radius_km=None if radius is None else _number(table, "radius_km", 0.0, key),
        learn=int(_number(table, "learn", 3, key)),
    )


def _keys(table: dict[str, Any], known: set[str], key: str) -> None:
    for k in table:
        if k not in known:
            raise GeoConfigError(f"{key}.{k}", f"unknown key (known: {', '.join(sorted(known))})")


def _list(table: dict[str, Any], name: str, kind: type, key: str) -> list[Any]:
    value = table.get(name, [])
    ok = isinstance(value, list) and all(
        isinstance(v, kind) and not isinstance(v, bool) for v in value
    )
    if not ok or len(value) > MAX_FENCE_ITEMS:
        raise GeoConfigError(f"{key}.{name}", f"expected a list of {kind.__name__}")
    return list(value)


def _number(table: dict[str, Any], name: str, default: float, key: str) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise GeoConfigError(f"{key}.{name}", "expected a number >= 0")
    return float(value)


def _text(table: dict[str, Any], name: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str):
        raise GeoConfigError(f"geo.{name}", "expected a string")
    return value


def _bool(table: dict[str, Any], name: str) -> bool:
    value = table.get(name, False)
    if not isinstance(value, bool):
        raise GeoConfigError(f"geo.{name}", "expected true or false")
    return value


__all__ = ["GeoConfig", "GeoConfigError", "GeoError", "parse_geo"]
