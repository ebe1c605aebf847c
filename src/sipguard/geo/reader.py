"""The admin's City and ASN databases (MaxMind or DB-IP, .mmdb) -> `Location`, at the edge.

geoipupdate replaces the files in place (a new inode), so a lookup stats the path at most every
`check_every` seconds and reopens it when it changed. Lookups are cached (bounded LRU, cleared on
reopen). Without a City database the country comes from iptocc's bundled data.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from sipguard.data.countries import country_of_ip
from sipguard.detect.geofence import Location

GEOIP_DIR = Path("/var/lib/GeoIP")  # geoipupdate's default DatabaseDirectory
CITY_NAMES = ("GeoLite2-City.mmdb", "GeoIP2-City.mmdb", "dbip-city-lite.mmdb", "dbip-city.mmdb")
ASN_NAMES = ("GeoLite2-ASN.mmdb", "GeoIP2-ISP.mmdb", "dbip-asn-lite.mmdb", "dbip-asn.mmdb")
CACHE_SIZE = 4096


class GeoError(Exception):
    """A configured database that cannot be read (path and reason)."""


def find_database(configured: str | None, names: Sequence[str], directory: Path) -> Path | None:
    """The configured path (which must exist), else the first standard name present."""
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise GeoError(f"{path}: no such database")
        return path
    return next((directory / n for n in names if (directory / n).is_file()), None)


@dataclass(slots=True)
class _Db:
    path: Path
    reader: Any = None
    stamp: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the open file
    checked: float = float("-inf")

    def refresh(self, now: float, check_every: float) -> None:
        if now - self.checked >= check_every:
            self.checked = now
            self._reopen_if_changed()

    def get(self, ip: str) -> dict[str, Any] | None:
        if self.reader is None:
            return None
        try:
            record = self.reader.get(ip)
        except (ValueError, RuntimeError):  # IPv6 in an IPv4-only database; a corrupt record
            return None
        return record if isinstance(record, dict) else None

    def _reopen_if_changed(self) -> bool:
        try:
            st = os.stat(self.path)
        except OSError:
            return False  # replaced right now, or removed: keep the open copy
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self.stamp:
            return False
        import maxminddb  # the optional `geo` extra; only needed when a database exists

        try:
            reader = maxminddb.open_database(str(self.path))
        # half-written or not an mmdb (InvalidDatabaseError is a RuntimeError): keep the old one
        except (OSError, ValueError, RuntimeError) as exc:
            if self.reader is None:
                raise GeoError(f"{self.path}: {exc}") from exc
            return False
        if self.reader is not None:
            self.reader.close()
        self.reader, self.stamp = reader, stamp
        return True


class GeoLookup:
    """`lookup(ip)` -> Location; `clock` is injected for the change checks."""

    def __init__(
        self,
        city: Path | None,
        asn: Path | None,
        clock: Callable[[], float],
        check_every: float = 60.0,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._city = _Db(city) if city else None
        self._asn = _Db(asn) if asn else None
        self._clock = clock
        self._check_every = check_every
        self._cache: OrderedDict[str, Location] = OrderedDict()
        self._cache_size = cache_size
        self._stamps: tuple[object, ...] = ()

    @property
    def source(self) -> str:
        """What answers lookups, for the log at start-up."""
        dbs = [str(d.path) for d in (self._city, self._asn) if d is not None]
        return ", ".join(dbs) if self._city else ", ".join([*dbs, "country data (iptocc)"])

    def lookup(self, ip: str) -> Location:
        try:
            ip = str(ip_address(ip))
        except ValueError:
            return Location()
        now = self._clock()
        dbs = [d for d in (self._city, self._asn) if d is not None]
        for db in dbs:
            db.refresh(now, self._check_every)
        stamps = tuple(d.stamp for d in dbs)
        if stamps != self._stamps:  # a database was replaced: cached answers may be stale
            self._stamps = stamps
            self._cache.clear()
        hit = self._cache.get(ip)
        if hit is not None:
            self._cache.move_to_end(ip)
            return hit
        city = self._city.get(ip) if self._city else None
        asn = self._asn.get(ip) if self._asn else None
        loc = _location(city, asn, ip)
        self._cache[ip] = loc
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return loc


def _location(city: dict[str, Any] | None, asn: dict[str, Any] | None, ip: str) -> Location:
    country = _str(_path(city, "country", "iso_code")) if city else country_of_ip(ip)
    sub = (city or {}).get("subdivisions")
    region_code = _str(_path(sub[0], "iso_code")) if isinstance(sub, list) and sub else None
    lat = _path(city, "location", "latitude")
    lon = _path(city, "location", "longitude")
    number = (asn or {}).get("autonomous_system_number")
    return Location(
        country=country,
        region=f"{country}-{region_code}" if country and region_code else None,
        city=_str(_path(city, "city", "names", "en")),
        lat=float(lat) if isinstance(lat, int | float) else None,
        lon=float(lon) if isinstance(lon, int | float) else None,
        asn=number if isinstance(number, int) else None,
        org=_str((asn or {}).get("autonomous_system_organization")),
    )


def _path(record: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(record, dict):
            return None
        record = record.get(key)
    return record


def _str(value: Any) -> str | None:
    return value[:100] if isinstance(value, str) and value else None
