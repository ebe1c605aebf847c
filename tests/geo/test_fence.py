"""detect/geofence.py (pure): region, ASN, country and radius fences on successful
registrations, learned usual locations, impossible travel, bounded state."""

from __future__ import annotations

from ipaddress import ip_address

from sipguard.core.events import Event, Kind, Service
from sipguard.detect import geofence
from sipguard.detect.geofence import Fence, GeoDetector, GeoRules, Location, distance_km

MSP = Location("US", "US-MN", "Minneapolis", 44.98, -93.26, 7922)
DULUTH = Location("US", "US-MN", "Duluth", 46.79, -92.10, 7922)
UTAH = Location("US", "US-UT", "Salt Lake City", 40.76, -111.89, 6315)
LAGOS = Location("NG", "NG-LA", "Lagos", 6.45, 3.39, 29465)


def ok(t: float, account: str = "1001", ip: str = "198.51.100.10") -> Event:
    return Event(t, Kind.AUTH_SUCCESS, Service.PJSIP, ip=ip_address(ip), account=account)


def test_region_fence_throws_out_the_right_password_from_utah() -> None:
    det = GeoDetector(GeoRules(accounts={"1001": Fence(regions=frozenset({"US-MN"}))}))
    hour = 3600.0  # hours apart: no impossible travel here
    assert det.feed(ok(0), MSP) == [] and det.feed(ok(10 * hour), DULUTH) == []
    (alert,) = det.feed(ok(20 * hour, ip="203.0.113.10"), UTAH)
    assert alert.rule == "geo-fence" and str(alert.network) == "203.0.113.10/32"
    assert "region US-UT not in ['US-MN']" in alert.reason and alert.account is None
    assert det.feed(ok(30 * hour, account="2002"), UTAH) == []  # no fence for that account


def test_asn_and_country_fences_and_lock() -> None:
    rules = GeoRules(default=Fence(asns=frozenset({7922})), lock=True)
    det = GeoDetector(rules)
    (alert,) = det.feed(ok(0), UTAH)
    assert "AS6315 not in [7922]" in alert.reason
    assert alert.account == "1001" and alert.actions == ("alert", "lock")
    det = GeoDetector(GeoRules(default=Fence(countries=frozenset({"US"}))))
    assert det.feed(ok(0), UTAH) == []
    assert "country NG" in det.feed(ok(99999), LAGOS)[0].reason
    assert det.feed(ok(200000), Location()) == []  # nothing known: not judged


def test_radius_around_learned_usual_locations() -> None:
    det = GeoDetector(GeoRules(default=Fence(radius_km=300, learn=2), max_speed_kmh=0))
    # learning: the first successes teach, even far apart
    assert det.feed(ok(0), MSP) == [] and det.feed(ok(10), DULUTH) == []
    assert det.feed(ok(20), MSP) == []  # 0 km
    assert det.feed(ok(30), DULUTH) == []  # a learned home
    (alert,) = det.feed(ok(40, ip="203.0.113.10"), UTAH)
    assert "km from the usual locations (radius 300 km)" in alert.reason
    assert det.feed(ok(50, ip="203.0.113.10"), UTAH) != []  # outside never teaches


def test_impossible_travel() -> None:
    det = GeoDetector(GeoRules())  # no fence: travel only
    assert det.feed(ok(0), MSP) == []
    assert det.feed(ok(3600), DULUTH) == []  # 230 km in an hour
    (alert,) = det.feed(ok(3600 + 1800, ip="203.0.113.140"), LAGOS)
    assert alert.rule == "impossible-travel" and alert.profile == "alert"
    assert "km/h > 900" in alert.reason
    # a day later, Lagos -> Minneapolis is a plane, not impossible
    assert det.feed(ok(3600 + 1800 + 86400), MSP) == []
    assert distance_km((MSP.lat or 0, MSP.lon or 0), (LAGOS.lat or 0, LAGOS.lon or 0)) > 9000


def test_state_is_bounded(monkeypatch: object) -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setattr(geofence, "MAX_ACCOUNTS", 3)
    try:
        det = GeoDetector(GeoRules(default=Fence(radius_km=1, learn=0)))
        for i in range(10):
            det.feed(ok(i, account=str(i)), MSP)
        assert len(det._accounts) == 3
    finally:
        mp.undo()
    det = GeoDetector(GeoRules(max_speed_kmh=0))
    for i in range(40):  # forty different towns, far apart
        det.feed(ok(i), Location("US", None, None, 10.0 + i, 10.0))
    assert len(det._accounts["1001"].homes) == geofence.MAX_HOMES


def test_only_successes_count() -> None:
    det = GeoDetector(GeoRules(default=Fence(countries=frozenset({"US"}))))
    failed = Event(0, Kind.WRONG_PASSWORD, Service.PJSIP, ip=ip_address("1.2.3.4"), account="1")
    assert det.feed(failed, LAGOS) == []
    assert det.feed(Event(0, Kind.AUTH_SUCCESS, Service.PJSIP, account="1"), LAGOS) == []
