"""sipguard.geo: the admin's City/ASN databases read with maxminddb (region, city, lat/lon,
ASN), reopened when geoipupdate replaces them, cached; country data when there is none."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from geodbs import ADDR, PLACES

from sipguard.geo import GeoConfigError, GeoError, parse_geo
from sipguard.geo.reader import ASN_NAMES, CITY_NAMES, GeoLookup, find_database


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def open_dir(directory: Path, clock: Clock) -> GeoLookup:
    return GeoLookup(
        find_database(None, CITY_NAMES, directory), find_database(None, ASN_NAMES, directory), clock
    )


def test_city_and_asn_from_the_standard_names(
    geoip: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    geoip()
    geo = open_dir(tmp_path / "GeoIP", Clock())
    loc = geo.lookup(ADDR["msp"])
    assert (loc.country, loc.region, loc.city, loc.asn) == ("US", "US-MN", "Minneapolis", 7922)
    assert loc.lat == pytest.approx(44.98) and loc.lon == pytest.approx(-93.26)
    assert geo.lookup(ADDR["lagos"]).region == "NG-LA"
    # not in the database, garbage, IPv6: nothing known, no crash
    assert geo.lookup("192.0.2.1").country is None
    assert geo.lookup("not an address").country is None
    assert geo.lookup("2001:db8::1").asn is None
    assert "GeoLite2-City.mmdb" in geo.source


def test_replaced_database_is_reopened_and_cache_cleared(
    geoip: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    geoip()
    clock = Clock()
    geo = open_dir(tmp_path / "GeoIP", clock)
    assert geo.lookup(ADDR["utah"]).city == "Salt Lake City"
    moved = dict(PLACES, utah=("203.0.113.0/25", "US", "MN", "St Paul", 44.95, -93.09, 7922))
    geoip(moved)  # geoipupdate's new file
    clock.now = 30.0  # before the next check: the cached answer stands
    assert geo.lookup(ADDR["utah"]).city == "Salt Lake City"
    clock.now = 61.0
    assert geo.lookup(ADDR["utah"]).city == "St Paul"


def test_no_database_falls_back_to_country_data(tmp_path: Path) -> None:
    geo = open_dir(tmp_path / "empty", Clock())
    loc = geo.lookup("8.8.8.8")
    assert loc.country == "US" and loc.region is None and loc.lat is None and loc.asn is None
    assert "iptocc" in geo.source


def test_cache_is_bounded(geoip: Callable[..., tuple[Path, Path]], tmp_path: Path) -> None:
    city, asn = geoip()
    geo = GeoLookup(city, asn, Clock(), cache_size=2)
    for ip in ADDR.values():
        geo.lookup(ip)
    assert len(geo._cache) == 2


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(GeoConfigError, match=r"geo\.accounts\.1001\.regions: expected a list"):
        parse_geo({"accounts": {"1001": {"regions": "US-MN"}}})
    with pytest.raises(GeoConfigError, match=r"geo\.default\.radius: unknown key"):
        parse_geo({"default": {"radius": 10}})
    with pytest.raises(GeoConfigError, match=r"geo\.max_speed_kmh: expected a number"):
        parse_geo({"max_speed_kmh": "fast"})
    assert parse_geo({}) is None and parse_geo({"enabled": False}) is None
    config = parse_geo({"city": str(tmp_path / "missing.mmdb"), "default": {}})
    assert config is not None
    with pytest.raises(GeoError, match=r"missing\.mmdb: no such database"):
        config.lookup(Clock())
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    config = parse_geo({"city": str(bad)})
    assert config is not None
    with pytest.raises(GeoError, match=r"bad\.mmdb"):
        config.lookup(Clock())


def test_cached_answer_does_not_read_the_database(
    geoip: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    city, asn = geoip()
    geo = GeoLookup(city, asn, Clock())
    first = geo.lookup(ADDR["msp"])
    assert geo._city is not None
    reads = []
    real = geo._city.reader.get
    geo._city.reader = type("Spy", (), {"get": lambda _s, ip: reads.append(ip) or real(ip)})()
    assert geo.lookup(ADDR["msp"]) is first and reads == []
    geo.lookup(ADDR["utah"])
    assert reads == [ADDR["utah"]]
