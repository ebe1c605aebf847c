"""The fraud rule kinds of detect/: pure detectors reading the call facts the edge filled in."""

from __future__ import annotations

from ipaddress import ip_address

from sipguard.core.events import CallInfo, Event, Kind, Service
from sipguard.detect.fraudkinds import (
    FRAUD_KINDS,
    MAX_PLACES,
    AddressCountry,
    AfterHours,
    DistantRegistrations,
    Finding,
    RiskyDestination,
    distance_km,
    minutes_of,
)


def _call(account: str | None, dest: str, risky: str, uid: str = "u1") -> Event:
    return Event(
        time=100.0,
        kind=Kind.CALL_START,
        service=Service.UNKNOWN,
        account=account,
        call=CallInfo(uid=uid, start=100.0, dest=dest, risky=risky),
    )


def test_risky_destination_fires_on_the_edge_verdict_only() -> None:
    kind = FRAUD_KINDS["risky_destination"]({})
    assert isinstance(kind, RiskyDestination)
    hit = kind.feed(_call("1001", "+881234567", "premium rate", "u7"), 100.0)
    assert hit == [Finding("1001", "call to +881234567: premium rate", ("u7",))]
    assert kind.feed(_call("1001", "+442071234567", ""), 100.0) == []
    assert kind.feed(_call(None, "+881234567", "premium rate"), 100.0) == []  # no account


def test_risky_destination_ignores_events_without_a_call_and_keeps_no_state() -> None:
    kind = RiskyDestination()
    auth = Event(time=1.0, kind=Kind.AUTH_SUCCESS, service=Service.UNKNOWN, account="1001")
    assert kind.feed(auth, 1.0) == []
    for i in range(1000):
        kind.feed(_call("1001", "+881234567", "premium rate", f"u{i}"), float(i))
    assert kind.state_size() == 0
    assert kind.expire(1e9) == 0


def test_call_facts_stay_out_of_the_serialized_event() -> None:
    event = _call("1001", "+881234567", "premium rate")
    assert event.call is not None
    assert "risky" not in event.call.to_dict() and "dest" not in event.call.to_dict()


def _dial(weekday: int, minute: int, scoped: bool = True) -> Event:
    info = CallInfo(
        uid="u9",
        dest="+2693123456",
        scope="international",
        country="KM",
        dest_type="fixed",
        hours_scoped=scoped,
        weekday=weekday,
        minute=minute,
    )
    return Event(time=0.0, kind=Kind.CALL_START, service=Service.UNKNOWN, account="1002", call=info)


def test_after_hours_checks_days_and_minutes_the_edge_put_on_the_call() -> None:
    params = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:30"}
    kind = FRAUD_KINDS["after_hours"](params)
    assert kind.feed(_dial(0, 8 * 60), 0.0) == []  # Monday 08:00: open
    assert kind.feed(_dial(4, 18 * 60 + 29), 0.0) == []  # Friday 18:29: open
    late = kind.feed(_dial(4, 18 * 60 + 30), 0.0)  # Friday 18:30: closed
    assert late == [
        Finding(
            "1002", "international call to +2693123456 (KM, fixed) outside business hours", ("u9",)
        )
    ]
    assert kind.feed(_dial(5, 12 * 60), 0.0) != []  # Saturday noon
    assert kind.feed(_dial(0, 7 * 60 + 59), 0.0) != []  # Monday before eight
    assert kind.feed(_dial(5, 12 * 60, scoped=False), 0.0) == []  # a national call: not its scope
    assert kind.feed(_dial(-1, -1), 0.0) == []  # no local time known: nothing to judge


def test_after_hours_parameters() -> None:
    hours = AfterHours({"days": ["sat", "nope"], "start": "9", "end": "17:15"})
    assert (hours.days, hours.start, hours.end) == (frozenset({5}), 540, 1035)
    assert minutes_of("24:00") == 1440


def _seen(account: str, ip: str, country: str) -> Event:
    return _at(account, ip, country, None, 5.0, uid=f"{account}@{ip}")


def test_address_country_uses_the_accounts_own_list_before_the_rules() -> None:
    kind = AddressCountry({"allowed": ["DE"]}, {"1001": frozenset({"AT", "CH"})})
    assert kind.feed(_seen("1001", "198.51.100.7", "AT"), 5.0) == []
    assert kind.feed(_seen("1002", "198.51.100.7", "DE"), 5.0) == []
    own = kind.feed(_seen("1001", "198.51.100.7", "DE"), 5.0)  # DE is not in 1001's own list
    assert own == [
        Finding(
            "1001",
            "198.51.100.7 is in DE, account allowed only in AT,CH",
            ("1001@198.51.100.7",),
            "198.51.100.7",
        )
    ]
    assert kind.feed(_seen("1002", "2001:db8::5", "NG"), 5.0)[0].ip == "2001:db8::5"
    assert kind.feed(_seen("1002", "198.51.100.7", ""), 5.0) == []  # unknown country
    assert AddressCountry({"allowed": []}).feed(_seen("1002", "198.51.100.7", "NG"), 5.0) == []


DE, BR, AT = (51.0, 10.0), (-10.0, -52.0), (47.5, 14.5)


def _at(
    account: str,
    ip: str,
    country: str,
    point: tuple[float, float] | None,
    t: float,
    uid: str = "",
) -> Event:
    info = CallInfo(uid=uid or f"u{t:.0f}", start=t, ip_country=country, ip_point=point)
    return Event(
        time=t,
        kind=Kind.AUTH_SUCCESS,
        service=Service.UNKNOWN,
        ip=ip_address(ip),
        account=account,
        call=info,
    )


def test_distant_registrations_fire_within_the_window_only() -> None:
    kind = FRAUD_KINDS["distant_registrations"]({"window": 3600.0, "min_km": 1500.0})
    assert kind.feed(_at("1001", "198.51.100.1", "DE", DE, 0.0), 0.0) == []
    assert kind.feed(_at("1001", "198.51.100.2", "AT", AT, 10.0), 10.0) == []  # too close
    far = kind.feed(_at("1001", "203.0.113.9", "BR", BR, 600.0), 600.0)
    assert [f.calls for f in far] == [("u600",), ("u600",)]  # far from DE and from AT
    assert far[0].reason.startswith("seen from 198.51.100.1 (DE) and 203.0.113.9 (BR), ")
    assert far[0].reason.endswith("km apart, within 600s")
    assert kind.feed(_at("1002", "203.0.113.9", "BR", BR, 600.0), 600.0) == []  # per account
    assert kind.feed(_at("1001", "198.51.100.1", "DE", DE, 9000.0), 9000.0) == []  # BR too old
    assert kind.feed(_at("1001", "198.51.100.1", "XX", None, 9001.0), 9001.0) == []  # no point


def test_distant_registrations_state_is_bounded_and_expires() -> None:
    kind = DistantRegistrations({"window": 60.0, "min_km": 1e9})
    for i in range(40):
        kind.feed(_at("1001", "198.51.100.1", f"C{i}", DE, float(i)), float(i))
    assert kind.state_size() == MAX_PLACES
    kind.feed(_at("1002", "198.51.100.1", "DE", DE, 100.0), 100.0)
    assert kind.expire(120.0) == 1  # 1001's sightings are all older than the window
    assert kind.state_size() == 1
    assert distance_km(DE, BR) > 8000
