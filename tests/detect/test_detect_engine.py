"""Engine unit tests with hand-built events: buckets, windows, expiry, bounds, grouping."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from sipguard.core.events import Event, Kind, Service
from sipguard.detect import Engine, RuleError, rule_from_dict

T0 = 1_800_000_000.0


def ev(kind: Kind, ip: str | None = "203.0.113.5", t: float = T0, **kw: object) -> Event:
    return Event(
        time=t,
        kind=kind,
        service=Service.PJSIP,
        ip=ip_address(ip) if ip else None,
        **kw,  # type: ignore[arg-type]
    )


def rule(bucket: dict[str, object], kinds: list[str], **top: object) -> dict[str, object]:
    data: dict[str, object] = {
        "id": "r",
        "description": "test rule",
        "filter": {"kinds": kinds},
        "bucket": bucket,
    }
    data.update(top)
    return data


def engine(data: dict[str, object], **kw: object) -> Engine:
    return Engine([rule_from_dict(data, {"scanners": ["sipvicious", "friendly-scanner"]})], **kw)  # type: ignore[arg-type]


LEAKY5 = rule({"type": "leaky", "threshold": 5, "window": "60s"}, ["wrong_password"])


def test_leaky_fires_once_per_crossing_and_again_after_draining() -> None:
    eng = engine(LEAKY5)
    fired = [
        eng.feed(ev(Kind.WRONG_PASSWORD, t=T0 + i, account=f"{i % 3}"), T0 + i) for i in range(30)
    ]
    alerts = [a for batch in fired for a in batch]
    assert len(alerts) == 1, "a source that keeps going raises one alert"
    assert [i for i, b in enumerate(fired) if b] == [4], "the 5th event crosses"
    a = alerts[0]
    assert a.network == ip_network("203.0.113.5/32") and a.key == "203.0.113.5"
    assert a.reason == (
        "5 wrong passwords for 3 accounts in 4s (leaky bucket of 5, draining 1 per 12s)"
    )
    # quiet for a full window: drained, so the next burst alerts again
    later = T0 + 29 + 61
    again = [eng.feed(ev(Kind.WRONG_PASSWORD, t=later + i), later + i) for i in range(5)]
    assert sum(len(b) for b in again) == 1


def test_leaky_slow_trickle_never_crosses() -> None:
    eng = engine(LEAKY5)
    # 5 per minute is the leak rate: one every 13s stays well under the capacity
    alerts = [
        a for i in range(100) for a in eng.feed(ev(Kind.WRONG_PASSWORD, t=T0 + 13 * i), T0 + 13 * i)
    ]
    assert alerts == []


def test_filter_kinds_and_evidence_bounded() -> None:
    data = rule(
        {"type": "counter", "threshold": 50, "window": "1h", "evidence": 20}, ["unknown_account"]
    )
    eng = engine(data)
    alerts = []
    for i in range(60):
        eng.feed(ev(Kind.AUTH_SUCCESS, t=T0 + i), T0 + i)  # context kind: ignored
        alerts += eng.feed(ev(Kind.UNKNOWN_ACCOUNT, t=T0 + i, account=str(i)), T0 + i)
    assert len(alerts) == 1
    assert len(alerts[0].events) == 20
    assert alerts[0].events[-1].account == "49", "evidence ends with the crossing event"
    assert eng.stats.matched == 60


def test_counter_window_is_sliding() -> None:
    eng = engine(rule({"type": "counter", "threshold": 3, "window": "10s"}, ["acl_denied"]))
    times = [0, 6, 12, 18, 19, 20]  # the first 3 within 10s: 12, 18, 19
    hits = [t for t in times if eng.feed(ev(Kind.ACL_DENIED, t=T0 + t), T0 + t)]
    assert hits == [19]


def test_trigger_first_event_then_quiet_window() -> None:
    eng = engine(rule({"type": "trigger", "window": "1h"}, ["log_tampering"]))
    assert eng.feed(ev(Kind.LOG_TAMPERING, detail="two addresses"), T0)
    assert not eng.feed(ev(Kind.LOG_TAMPERING), T0 + 10)
    assert eng.feed(ev(Kind.LOG_TAMPERING), T0 + 10 + 3601)


def test_distinct_accounts_enumeration() -> None:
    data = rule(
        {"type": "distinct", "field": "account", "threshold": 4, "window": "5m"},
        ["unknown_account", "wrong_password"],
    )
    eng = engine(data)
    # the same account over and over is guessing, not enumeration
    assert not [
        a
        for i in range(20)
        for a in eng.feed(ev(Kind.WRONG_PASSWORD, t=T0 + i, account="1001"), T0 + i)
    ]
    out = []
    for i, acct in enumerate(["1002", "1003", "1004"]):
        out += eng.feed(ev(Kind.UNKNOWN_ACCOUNT, t=T0 + 30 + i, account=acct), T0 + 30 + i)
    assert len(out) == 1
    assert out[0].reason.startswith("4 distinct accounts in 23 ")


def test_ipv6_grouped_by_64_and_configurable() -> None:
    eng = engine(LEAKY5)
    alerts = []
    for i in range(5):
        alerts += eng.feed(ev(Kind.WRONG_PASSWORD, ip=f"2001:db8:1:2::{i + 1}"), T0)
    assert len(alerts) == 1
    assert alerts[0].network == ip_network("2001:db8:1:2::/64")
    assert alerts[0].key == "2001:db8:1:2::/64"
    eng128 = engine({**LEAKY5, "group": {"by": "source", "ipv6_prefix": 128}})
    assert not [
        a
        for i in range(5)
        for a in eng128.feed(ev(Kind.WRONG_PASSWORD, ip=f"2001:db8::{i + 1}"), T0)
    ]
    single = [
        a for _ in range(5) for a in eng128.feed(ev(Kind.WRONG_PASSWORD, ip="2001:db8::9"), T0)
    ]
    assert single[0].network == ip_network("2001:db8::9/128")


def test_no_address_never_source_keyed_but_counts_for_account() -> None:
    src = engine(LEAKY5)
    for _ in range(10):
        assert not src.feed(ev(Kind.WRONG_PASSWORD, ip=None, account="2001"), T0)
    assert src.stats.no_key == 10 and src.state_size() == 0
    acct = engine({**LEAKY5, "group": {"by": "account"}})
    alerts = [
        a for _ in range(5) for a in acct.feed(ev(Kind.WRONG_PASSWORD, ip=None, account="2001"), T0)
    ]
    assert len(alerts) == 1
    assert alerts[0].network is None and alerts[0].key == "account:2001"


def test_distributed_attack_per_account() -> None:
    data = rule(
        {"type": "distinct", "threshold": 5, "window": "10m"},
        ["wrong_password"],
        group={"by": "account_distinct_sources"},
        profile="alert",
    )
    eng = engine(data)
    alerts = []
    for i in range(5):  # one try each from 5 sources in different /64s and /32s
        alerts += eng.feed(
            ev(Kind.WRONG_PASSWORD, ip=f"198.51.100.{i + 1}", t=T0 + i * 30, account="1001"),
            T0 + i * 30,
        )
    assert len(alerts) == 1
    a = alerts[0]
    assert a.key == "account:1001" and a.network is None and a.profile == "alert"
    assert "attacked from 5 sources" in a.reason
    # addresses in one /64 are one source
    eng2 = engine(data)
    hits = [
        x
        for i in range(10)
        for x in eng2.feed(ev(Kind.WRONG_PASSWORD, ip=f"2001:db8::{i + 1}", account="7"), T0)
    ]
    assert hits == []


def test_matchers_scanner_list_regex_not() -> None:
    scan = rule(
        {"type": "trigger", "window": "1h"},
        ["unknown_account", "scanner_probe"],
        filter={
            "kinds": ["unknown_account", "scanner_probe"],
            "match": [{"field": "user_agent", "op": "contains_any", "list": "scanners"}],
        },
    )
    eng = engine(scan)
    assert not eng.feed(ev(Kind.UNKNOWN_ACCOUNT, user_agent="Linphone/5"), T0)
    assert eng.feed(ev(Kind.UNKNOWN_ACCOUNT, ip="192.0.2.1", user_agent="SIPVicious"), T0)
    ext = rule(
        {"type": "counter", "threshold": 2, "window": "1h"},
        ["call_rejected"],
        filter={
            "kinds": ["call_rejected"],
            "match": [
                {"field": "target", "op": "regex", "value": r"^(\+|00|011|9)\d{6,}"},
                {"op": "not", "match": {"field": "ip", "op": "cidr", "values": ["10.0.0.0/8"]}},
            ],
        },
    )
    eng = engine(ext)
    assert not eng.feed(ev(Kind.CALL_REJECTED, target="100"), T0)
    assert not eng.feed(ev(Kind.CALL_REJECTED, target="200"), T0)
    assert not [
        a
        for _ in range(3)
        for a in eng.feed(ev(Kind.CALL_REJECTED, ip="10.1.2.3", target="0044201234567"), T0)
    ]
    hits = [
        a
        for t in ("0044201234567", "900123456789")
        for a in eng.feed(ev(Kind.CALL_REJECTED, target=t), T0)
    ]
    assert len(hits) == 1


def test_expire_and_lru_cap() -> None:
    eng = engine(LEAKY5, max_keys=100)
    for i in range(250):
        eng.feed(ev(Kind.WRONG_PASSWORD, ip=f"10.0.{i // 250}.{i % 250}", t=T0 + i), T0 + i)
    assert eng.state_size() == 100
    assert eng.stats.evicted == 150
    # one event each drains in 12s (5 per 60s): at +254, keys last touched up to +242 are idle
    assert eng.expire(T0 + 254) == 93
    assert eng.state_size() == 7
    assert eng.expire(T0 + 300) == 7 and eng.state_size() == 0
    eng.feed(ev(Kind.WRONG_PASSWORD), T0)
    eng.feed(ev(Kind.WRONG_PASSWORD), T0)
    assert eng.expire(T0 + 1) == 0 and eng.state_size() == 1


def test_out_of_order_time_is_tolerated() -> None:
    eng = engine(LEAKY5)
    alerts = []
    for t in (100, 50, 101, 20, 102):
        alerts += eng.feed(ev(Kind.WRONG_PASSWORD, t=T0 + t), T0 + t)
    assert len(alerts) == 1


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"bucket": {"type": "bogus"}}, "bucket.type"),
        ({"filter": {"kinds": ["nope"]}}, "filter.kinds[0]"),
        (
            {"filter": {"kinds": ["wrong_password"], "match": [{"field": "x", "op": "eq"}]}},
            "filter.match[0].field",
        ),
        (
            {
                "filter": {
                    "kinds": ["wrong_password"],
                    "match": [{"field": "target", "op": "regex", "value": "("}],
                }
            },
            "filter.match[0].value",
        ),
        (
            {
                "filter": {
                    "kinds": ["wrong_password"],
                    "match": [{"field": "user_agent", "op": "contains_any", "list": "nope"}],
                }
            },
            "filter.match[0].list",
        ),
        ({"bucket": {"type": "leaky", "threshold": 0}}, "bucket.threshold"),
        ({"bucket": {"type": "leaky", "window": "soon"}}, "bucket.window"),
        ({"group": {"by": "account_distinct_sources"}}, "bucket.type"),
        ({"severity": "urgent"}, "severity"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_rule_names_the_key(patch: dict[str, object], key: str) -> None:
    with pytest.raises(RuleError) as exc:
        rule_from_dict({**LEAKY5, **patch}, {"scanners": ["x"]})
    assert exc.value.key == key


def test_overrides() -> None:
    spec = rule_from_dict(LEAKY5, {})
    changed = spec.with_overrides({"threshold": 2, "window": "10s", "profile": "long"})
    assert (changed.threshold, changed.window, changed.profile) == (2, 10.0, "long")
    with pytest.raises(RuleError):
        spec.with_overrides({"threshold": -1})
    with pytest.raises(RuleError):
        spec.with_overrides({"kinds": []})
