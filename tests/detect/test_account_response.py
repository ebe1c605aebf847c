"""The named account conditions (detect/accounts.py) and the shipped response to a distributed
attack: `unauthenticated` and `account_alerted_by`, with the shipped rules where it matters."""

from __future__ import annotations

from ipaddress import ip_address

import pytest

from sipguard.config.rules import load_rules
from sipguard.core.events import Event, Kind, Service
from sipguard.detect import Engine, RuleError, rule_from_dict
from sipguard.detect.accounts import AccountWatch

T0 = 1_800_000_000.0


def ev(kind: Kind, ip: str, account: str, t: float) -> Event:
    return Event(time=t, kind=kind, service=Service.PJSIP, ip=ip_address(ip), account=account)


def fail(ip: str, account: str, t: float) -> Event:
    return ev(Kind.WRONG_PASSWORD, ip, account, t)


def shipped(*ids: str) -> Engine:
    return Engine(load_rules(only=list(ids)))


def alerts(engine: Engine, events: list[Event]) -> list[tuple[str, str]]:
    return [(a.rule, a.key) for a in engine.feed_many(events)]


def test_two_sources_on_one_account_alert_then_those_that_go_on_are_banned() -> None:
    eng = shipped("distributed-account-attack", "account-under-attack")
    first = alerts(eng, [fail("198.51.100.1", "1001", T0), fail("198.51.100.2", "1001", T0 + 60)])
    assert first == [("distributed-account-attack", "account:1001")]
    (watched,) = eng.accounts.alerts(T0 + 60)
    assert (watched.account, watched.sources) == ("1001", 2)
    assert "attacked from 2 sources" in watched.reason
    # three more failures from one source while the alert lasts: banned (per source, with a
    # network); two from the other: not yet
    later = [fail("198.51.100.1", "1001", T0 + 120 + i * 300) for i in range(3)]
    later += [fail("198.51.100.2", "1001", T0 + 130 + i * 300) for i in range(2)]
    later.sort(key=lambda e: e.time)
    got = eng.feed_many(later)
    assert [(a.rule, a.key) for a in got] == [("account-under-attack", "198.51.100.1")]
    assert got[0].network is not None
    # the same three failures on an account nobody attacks: nothing
    assert alerts(eng, [fail("198.51.100.9", "1002", T0 + 200 + i) for i in range(3)]) == []


def test_the_alert_lasts_while_attempts_go_on_and_lapses_a_window_after_the_last() -> None:
    eng = shipped("distributed-account-attack", "account-under-attack")
    eng.feed_many([fail("198.51.100.1", "1001", T0), fail("198.51.100.2", "1001", T0 + 1)])
    # one attempt every 50 minutes keeps it alive past the rule's hour
    for i in range(1, 4):
        eng.feed(fail("198.51.100.3", "1001", T0 + i * 3000), T0 + i * 3000)
    assert eng.accounts.alert_for("1001", T0 + 9000 + 3000) is not None
    quiet = T0 + 9000 + 3601
    assert eng.accounts.alert_for("1001", quiet) is None
    eng.expire(quiet)
    assert eng.accounts.alerts(quiet) == []


def test_own_phone_that_authenticated_keeps_ordinary_thresholds() -> None:
    eng = shipped("distributed-account-attack", "account-under-attack")
    phone = "203.0.113.60"
    eng.feed(ev(Kind.AUTH_SUCCESS, phone, "1001", T0 - 600), T0 - 600)
    eng.feed_many([fail("198.51.100.1", "1001", T0), fail("198.51.100.2", "1001", T0 + 1)])
    assert alerts(eng, [fail(phone, "1001", T0 + 10 + i * 100) for i in range(4)]) == []
    # but the same address guessing another account under attack has earned nothing there
    eng.feed_many([fail("198.51.100.1", "1002", T0 + 500), fail("198.51.100.2", "1002", T0 + 501)])
    got = alerts(eng, [fail(phone, "1002", T0 + 600 + i * 100) for i in range(3)])
    assert got == [("account-under-attack", phone)]


def test_slow_guesser_is_caught_and_a_mistyping_phone_is_not() -> None:
    eng = shipped("slow-password-guessing", "password-guessing")
    slow = []
    for i in range(12):  # one every 9 minutes, unknown accounts and wrong passwords mixed
        kind = Kind.UNKNOWN_ACCOUNT if i % 2 else Kind.WRONG_PASSWORD
        slow.append(ev(kind, "198.51.100.20", f"10{i % 3}", T0 + i * 540))
    phone = [fail("203.0.113.30", "2002", T0 + i * 30) for i in range(3)]
    phone.append(ev(Kind.AUTH_SUCCESS, "203.0.113.30", "2002", T0 + 120))
    events = sorted(slow + phone, key=lambda e: e.time)
    assert alerts(eng, events) == [("slow-password-guessing", "198.51.100.20")]


def test_authenticated_source_still_counts_for_unknown_accounts() -> None:
    eng = shipped("slow-password-guessing")
    office = "203.0.113.41"
    eng.feed(ev(Kind.AUTH_SUCCESS, office, "2001", T0), T0)
    mistypes = [fail(office, "2001", T0 + 60 + i * 400) for i in range(15)]
    assert alerts(eng, mistypes) == []
    unknown = [ev(Kind.UNKNOWN_ACCOUNT, office, "2001", T0 + 7000 + i * 60) for i in range(12)]
    assert alerts(eng, unknown) == [("slow-password-guessing", office)]


def test_watch_tables_are_bounded() -> None:
    watch = AccountWatch(max_authenticated=10, max_attacked=3)
    for i in range(50):
        watch.authenticated(ev(Kind.AUTH_SUCCESS, f"198.51.100.{i}", "1001", T0), T0)
    assert len(watch._authenticated) == 10
    assert not watch.never_authenticated(fail("198.51.100.49", "1001", T0))
    assert watch.never_authenticated(fail("198.51.100.0", "1001", T0)), "the oldest evicted"


@pytest.mark.parametrize(
    ("flt", "key"),
    [
        ({"kinds": ["wrong_password"], "unauthenticated": "yes"}, "filter.unauthenticated"),
        ({"kinds": ["wrong_password"], "account_alerted_by": "a b"}, "filter.account_alerted_by"),
        ({"kinds": ["wrong_password"], "kind": ["x"]}, "filter.kind"),
    ],
)
def test_bad_conditions_name_their_key(flt: dict[str, object], key: str) -> None:
    data = {"id": "r", "description": "d", "filter": flt, "bucket": {"type": "trigger"}}
    with pytest.raises(RuleError) as err:
        rule_from_dict(data, {})
    assert err.value.key == key


def test_a_source_registered_on_the_account_gets_the_higher_threshold_there_only() -> None:
    eng = shipped("password-guessing", "password-guessing-known-source")
    office = "203.0.113.40"
    eng.feed(ev(Kind.AUTH_SUCCESS, office, "2001", T0), T0)
    burst = [fail(office, "2001", T0 + 10 + i) for i in range(10)]
    assert alerts(eng, burst) == [], "10 quick failures on its own account: under 15"
    more = [fail(office, "2001", T0 + 20 + i) for i in range(6)]
    assert alerts(eng, more) == [("password-guessing-known-source", office)]
    # on an account it never authenticated on, the ordinary threshold: banned at 5
    eng2 = shipped("password-guessing", "password-guessing-known-source")
    eng2.feed(ev(Kind.AUTH_SUCCESS, office, "2001", T0), T0)
    other = [fail(office, "2009", T0 + 10 + i) for i in range(5)]
    assert alerts(eng2, other) == [("password-guessing", office)]
