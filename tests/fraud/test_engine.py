"""Each detector on hand-made calls, time injected."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sipguard.config.errors import ConfigError
from sipguard.fraud.classify import Classifier
from sipguard.fraud.config import build_config, load_config
from sipguard.fraud.engine import FraudEngine, distance_km
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.model import Call, Hit
from sipguard.fraud.tables import RateTable, load_country_points

TZ = ZoneInfo("Europe/Berlin")
WED_10 = datetime(2026, 11, 11, 10, tzinfo=TZ).timestamp()
COUNTRY = {"198.51.100.1": "DE", "203.0.113.7": "BR", "192.0.2.9": "AT"}  # injected lookup


def engine(accounts: dict[str, Any] | None = None, **rules: Any) -> FraudEngine:
    config = build_config(
        {
            "home_country": "DE",
            "national_prefix": "0",
            "international_prefixes": ["00"],
            "timezone": "Europe/Berlin",
            "rules": rules,
            "accounts": accounts or {},
        }
    )
    rates = RateTable()
    rates.add("49", 0.01)
    rates.add("44", 0.50)
    eng = FraudEngine(
        config, Classifier(config.numbering), rates, COUNTRY.get, load_country_points()
    )
    eng.load_baseline({"1001": ["GB"]})
    return eng


n = 0


def call(dst: str, start: float, dur: float = 60, account: str = "1001", ip: str = "") -> Call:
    global n
    n += 1
    return Call(
        f"u{n}", account, dst, start, start + dur, dur, dur > 0, f"PJSIP/{account}-{n:08x}", ip
    )


def rules(hits: list[Hit]) -> set[str]:
    return {h.rule for h in hits}


def test_velocity() -> None:
    e = engine(velocity={"max_calls": 5, "window": 60})
    hits = [h for i in range(6) for h in e.cdr_call(call(f"03012345{i:02d}", WED_10 + i * 5, 2))]
    assert rules(hits) == {"velocity"} and len(hits[0].calls) == 6
    e = engine(velocity={"max_calls": 5, "window": 60})
    assert not [
        h
        for i in range(6)
        for h in e.cdr_call(call("030123456", WED_10 + i * 20, 2))
        if h.rule == "velocity"
    ]


def test_offline_concurrency_is_exact() -> None:
    e = engine()
    # a long call with two short calls one after the other inside it: never 3 at once
    assert not e.cdr_call(call("030111111", WED_10 + 10, 50))
    assert not e.cdr_call(call("030111112", WED_10 + 100, 50))
    assert not e.cdr_call(call("030111113", WED_10, 600))
    # a third call overlapping all of them, the first to end (CDRs arrive in hangup order)
    e = engine()
    assert not e.cdr_call(call("030111114", WED_10 + 20, 30))
    e.cdr_call(call("030111115", WED_10, 600))
    hits = e.cdr_call(call("030111116", WED_10 + 10, 900))
    assert rules(hits) == {"concurrent"} and len(hits[0].calls) == 3


def test_live_concurrency_and_per_account_limit() -> None:
    e = engine(accounts={"1001": {"max_concurrent": 3}})
    live = [call(f"03022222{i}", WED_10 + i, 0) for i in range(4)]
    for c in live:
        c.end = None
    assert not e.call_started(live[0]) and not e.call_started(live[1])
    assert not e.call_started(live[2])  # the account may have 3
    hits = e.call_started(live[3])
    assert rules(hits) == {"concurrent"} and hits[0].channels == (live[3].channel,)
    live[0].end = WED_10 + 30
    e.call_ended(live[0])
    assert len(e.accounts["1001"].active) == 3
    assert e.live_calls("1001") == 3  # what the concurrency kind counts


def test_after_hours_only_for_international_and_premium() -> None:
    sat_3am = datetime(2026, 11, 14, 3, tzinfo=TZ).timestamp()
    e = engine()
    assert rules(e.cdr_call(call("00442079460123", sat_3am))) == {"after_hours"}
    assert not e.cdr_call(call("030123456", sat_3am))  # national: fine at any hour
    assert not e.cdr_call(call("00442079460124", WED_10))


def test_new_country_after_learning() -> None:
    config_rules = {"new_country": {"learn_seconds": 3600}}
    e = engine(**config_rules)
    e.learn_until = None  # learn from the data itself
    assert not e.cdr_call(call("0033123456789", WED_10))  # learning: France becomes known
    assert not e.cdr_call(call("0033123456780", WED_10 + 7200))
    hits = e.cdr_call(call("0081312345678", WED_10 + 7300))
    assert rules(hits) == {"new_country"} and "JP" in hits[0].reason
    assert not e.cdr_call(call("0081312345679", WED_10 + 7400))  # only the first call


def test_spend_daily_limit_and_reset() -> None:
    e = engine(accounts={"1001": {"daily_limit": 20.0}})
    assert not e.cdr_call(call("00442079460123", WED_10, 30 * 60))  # 15.00
    hits = e.cdr_call(call("00442079460124", WED_10 + 3600, 12 * 60))  # +6.00
    assert rules(hits) == {"spend"} and "21.00" in hits[0].reason
    assert not e.cdr_call(call("00442079460125", WED_10 + 86400, 60))  # a new day


def test_running_cost_of_live_calls() -> None:
    e = engine(accounts={"1001": {"daily_limit": 5.0}})
    c = call("00442079460123", WED_10, 0)
    c.end, c.answered, c.answer = None, True, WED_10 + 5
    e.call_started(c)
    assert not e.tick(WED_10 + 5 + 9 * 60)  # 4.50
    hits = e.tick(WED_10 + 5 + 11 * 60)  # 5.50
    assert rules(hits) == {"spend"} and hits[0].channels == (c.channel,)


def test_running_cost_starts_when_the_tracker_sees_the_answer() -> None:
    e = engine(accounts={"1001": {"daily_limit": 5.0}})
    tracker = LiveTracker(e)
    fields = {"Channel": "PJSIP/1001-0000002a", "Uniqueid": "live1", "Exten": "00442079460123"}
    for name, at in (("Newchannel", WED_10), ("DialBegin", WED_10), ("BridgeEnter", WED_10 + 5)):
        assert not tracker.feed(name, {**fields, "Event": name}.get, at)
    assert not e.tick(WED_10 + 5 + 9 * 60)  # 4.50 since the answer
    hits = e.tick(WED_10 + 5 + 11 * 60)  # 5.50
    assert rules(hits) == {"spend"} and hits[0].channels == ("PJSIP/1001-0000002a",)
    # a call that is dialled but never answered costs nothing, however long it rings
    fields = {"Channel": "PJSIP/1001-0000002b", "Uniqueid": "live2", "Exten": "00442079460124"}
    e = engine(accounts={"1001": {"daily_limit": 5.0}})
    tracker = LiveTracker(e)
    for name in ("Newchannel", "DialBegin"):
        tracker.feed(name, {**fields, "Event": name}.get, WED_10)
    assert not e.tick(WED_10 + 3600)


def test_short_burst_to_one_range() -> None:
    e = engine(short_burst={"min_calls": 5, "window": 300, "range_digits": 2})
    hits = [h for i in range(5) for h in e.cdr_call(call(f"0301234{i:02d}", WED_10 + 30 * i, 3))]
    assert rules(hits) == {"short_burst"} and len(hits[0].calls) == 5
    # the same number of short calls spread over different ranges: nothing
    e = engine(short_burst={"min_calls": 5, "window": 300, "range_digits": 2})
    assert not [h for i in range(5) for h in e.cdr_call(call(f"030{i}23400", WED_10 + 30 * i, 3))]


def test_risky_destinations() -> None:
    e = engine()
    assert "risky_destination" in rules(e.cdr_call(call("09001234567", WED_10)))
    assert "risky_destination" in rules(e.cdr_call(call("00881612345678", WED_10 + 100)))
    assert "risky_destination" in rules(e.cdr_call(call("005371234567", WED_10 + 200)))  # CU
    e = engine(risky_destination={"high_risk_countries": False})
    assert "risky_destination" not in rules(e.cdr_call(call("005371234567", WED_10)))


def test_address_rules() -> None:
    e = engine(accounts={"1001": {"countries": ["DE", "BR"]}}, address_country={"allowed": ["DE"]})
    assert not e.seen_address("1001", "198.51.100.1", WED_10)
    hits = e.seen_address("1001", "203.0.113.7", WED_10 + 600)  # allowed, but far away
    assert rules(hits) == {"distant_registrations"}
    assert not e.seen_address("1001", "203.0.113.7", WED_10 + 9000)  # hours later: travel
    hits = e.seen_address("1002", "203.0.113.7", WED_10)
    assert rules(hits) == {"address_country"} and hits[0].ip == "203.0.113.7"
    alert = hits[0].to_alert()
    assert str(alert.network) == "203.0.113.7/32" and alert.key == "account:1002"
    # near countries are not "distant"
    e.seen_address("1003", "198.51.100.1", WED_10)
    assert "distant_registrations" not in rules(e.seen_address("1003", "192.0.2.9", WED_10 + 60))
    assert e.seen_address("1003", "10.0.0.1", WED_10) == []  # private: no country


def test_distance() -> None:
    pts = load_country_points()
    assert 400 < distance_km(pts["DE"], pts["AT"]) < 700
    assert distance_km(pts["DE"], pts["BR"]) > 8000
    assert distance_km(pts["DE"], pts["RU"]) > 2000  # a mean of its zones, not Kaliningrad


def test_disabled_rule_and_ignored_account() -> None:
    e = engine(risky_destination={"enabled": False})
    assert "risky_destination" not in rules(e.cdr_call(call("09001234567", WED_10)))
    config = build_config({"ignore_accounts": ["trunk"], "home_country": "DE"})
    eng = FraudEngine(config, Classifier(config.numbering))
    assert eng.cdr_call(call("09001234567", WED_10, account="trunk")) == []


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[fraud.rules.velocity]\nmax_calls = -1\n", "fraud.rules.velocity.max_calls", "negative"),
        ("[fraud.rules.nope]\nx = 1\n", "fraud.rules.nope", "unknown rule"),
        ("[fraud.rules.spend]\nactions = ['explode']\n", "fraud.rules.spend.actions", "unknown"),
        ("[fraud]\ntimezone = 'Mars/Base'\n", "fraud.timezone", "unknown time zone"),
        ("[fraud]\nhome_country = 'Germany'\n", "fraud.home_country", "ISO"),
        ('[fraud.accounts."1001"]\ncountries = ["DEU"]\n', "countries", "ISO"),
        ("[fraud.cdr]\ncolumns = ['start', 'bogus']\n", "fraud.cdr.columns", "bogus"),
        ("[fraud.cdr]\ncolumns = ['start']\n", "fraud.cdr.columns", "dst"),
        ("[fraud\n", "", "TOML"),
    ],
)
def test_config_errors_name_file_key_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = tmp_path / "sipguard.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and key in msg and reason in msg and "\n" not in msg


def test_config_overrides_apply(tmp_path: Path) -> None:
    path = tmp_path / "f.toml"
    path.write_text('[fraud.rules.concurrent]\nmax_calls = 4\n[fraud]\nhome_country = "GB"\n')
    cfg = load_config(path)
    assert cfg.rules["concurrent"]["max_calls"] == 4
    assert cfg.rules["velocity"]["max_calls"] == 25  # packaged default kept
    assert cfg.numbering.home_country == "GB"


def test_hotlist_range_added_while_running_is_seen_despite_the_caches() -> None:
    """A range learned at run time (the fleet's): the number was classified (and cached) before;
    the next call to it is a hotlist hit that names the number it fired on."""
    e = engine(risky_destination={"types": ["satellite"]})
    assert not [h for h in e.cdr_call(call("0301234567", WED_10)) if h.rule == "risky_destination"]
    e.add_hotlist("4930123", "fleet:a")
    hits = [h for h in e.cdr_call(call("0301234567", WED_10 + 60)) if h.rule == "risky_destination"]
    assert len(hits) == 1 and "fleet:a" in hits[0].reason and hits[0].dest == "+49301234567"


def test_expire_forgets_idle_accounts_but_not_live_calls_or_countries() -> None:
    e = engine(short_burst={"min_calls": 50})
    for i in range(5):
        e.cdr_call(call(f"0301234{i:02d}", WED_10 + 10 * i, 3))  # short calls: kept per range
    e.cdr_call(call("0033123456789", WED_10 + 60, 3, account="1002"))
    live = call("030999999", WED_10 + 100, 0, account="1003")
    live.end = None
    e.call_started(live)
    sizes = e.state_sizes()
    assert sizes["velocity"] == 7 and sizes["concurrent"] == 7 and sizes["short_burst"] == 6
    assert e.expire(WED_10 + 100 + 2 * 86400) == 2  # 1001 and 1002; 1003 has a live call
    sizes = e.state_sizes()
    assert sizes["velocity"] == 1 and sizes["short_burst"] == 0  # only 1003's dial is left
    assert sizes["concurrent"] == 1 and e.live_calls("1003") == 1
    assert e.baseline() == {"1001": ["GB"], "1002": ["FR"]}  # learned countries stay
