"""Source-key texts, their identity caches, the alerts' remembered network texts, cached
duration texts and the inlined expiry: each against the plain computation it replaces."""

from __future__ import annotations

import re
from collections import OrderedDict
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.config.rules import load_rules
from sipguard.core.events import Event, IPAddress, Kind, Service
from sipguard.detect import Engine, format_duration, sourcekeys
from sipguard.detect.buckets import BUCKET_TYPES, Bucket
from sipguard.detect.durations import parse_duration
from sipguard.detect.engine import First, _from_first, source_network
from sipguard.detect.sourcekeys import (
    cached_key,
    clear_caches,
    host_key,
    key_text,
    network_key,
    network_text,
)
from sipguard.detect.spec import RuleSpec


def plain_key(ip: IPAddress, prefix: int) -> str:
    if prefix >= ip.max_prefixlen:
        return str(ip)
    net = IPv4Network if ip.version == 4 else IPv6Network
    return str(net((int(ip), prefix), strict=False))


class OddV4(IPv4Address):
    """A subclass takes the general path."""


addresses = (
    st.integers(0, 2**32 - 1).map(IPv4Address)
    | st.integers(0, 2**128 - 1).map(IPv6Address)
    | st.integers(0, 2**16 - 1).map(lambda n: IPv6Address(n << 112))
    | st.sampled_from([ip_address("fe80::1%eth0"), ip_address("::ffff:1.2.3.4"), OddV4("10.0.0.1")])
)


@settings(max_examples=300, deadline=None)
@given(addresses, st.integers(-1, 130))
def test_key_text_is_ipaddress_text(ip: IPAddress, prefix: int) -> None:
    try:
        want = plain_key(ip, prefix)
    except ValueError as exc:
        with pytest.raises(type(exc)):
            key_text(ip, prefix)
        return
    assert key_text(ip, prefix) == want


def test_cached_keys_by_identity_equal_twins_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    cache: sourcekeys.KeyCache = {}
    monkeypatch.setattr(sourcekeys, "CACHE_MAX", 8)
    ips = [ip_address(f"2001:db8:{i}::1") for i in range(20)]
    twins = [ip_address(f"2001:db8:{i}::1") for i in range(20)]
    for ip, twin in zip(ips, twins, strict=True):
        assert cached_key(cache, ip, 24, 48) == cached_key(cache, twin, 24, 48)
        assert cached_key(cache, ip, 24, 48) == plain_key(ip, 48)
        assert len(cache) <= 8
    for entry_ip, key in cache.values():
        assert key == plain_key(entry_ip, 48)
    clear_caches()
    v4 = ip_address("203.0.113.9")
    assert host_key(v4) == "203.0.113.9"
    assert host_key(ip_address("2001:db8:1:2:3::4")) == "2001:db8:1:2::/64"
    assert sourcekeys.HOST_KEYS[id(v4)] == (v4, "203.0.113.9")
    clear_caches()
    assert not sourcekeys.HOST_KEYS


def test_alert_networks_texts_are_their_own() -> None:
    """The engine remembers each alert network's key and text: both equal what printing the
    network gives, for hosts and wider networks, IPv4 and IPv6."""
    from dataclasses import replace

    rules = [r for r in load_rules() if r.enabled]
    rules += [replace(r, id=r.id + "-wide", ipv4_prefix=24, ipv6_prefix=48) for r in rules]
    engine = Engine(rules)
    t = 1_800_000_000.0
    alerts = []
    for i in range(400):
        ip = ip_address(f"198.51.100.{i % 7}" if i % 2 else f"2001:db8:{i % 5}::{i % 3 + 1}")
        kind = (Kind.WRONG_PASSWORD, Kind.UNKNOWN_ACCOUNT, Kind.LOG_TAMPERING)[i % 3]
        e = Event(t + i, kind, Service.PJSIP, ip, account=f"{i % 11}", user_agent="sipvicious")
        alerts += engine.feed(e, t + i)
    networks = [a for a in alerts if a.network is not None]
    assert len(networks) > 20
    assert {a.network.prefixlen for a in networks} >= {32, 24, 64, 48}  # type: ignore[union-attr]
    for a in networks:
        net = a.network
        assert net is not None
        assert net == source_network(next(r for r in rules if r.id == a.rule), a.events[-1])
        assert network_key(net) == a.key
        assert network_text(net) == str(net)
        fresh = type(net)(str(net))  # not remembered: computed
        assert network_key(fresh) == a.key
        assert network_text(fresh) == str(net)


#: Each unit's largest count before the next unit takes over (weeks have none).
_BELOW_NEXT = {"d": 7, "h": 24, "m": 60, "s": 60}
_DURATION_TEXT = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def assert_duration_text(seconds: float | None, text: str) -> None:
    """What format_duration's text must be, stated as its properties rather than computed the
    same way: it reads back (parse_duration) as the whole seconds, largest units first, each
    used at most once, never zero and below the next unit."""
    if seconds is None:
        assert text == "permanent"
        return
    whole = round(seconds)
    if whole == 0:
        assert text.endswith("s")  # under half a second: the value to two significant digits
        assert float(text[:-1]) == pytest.approx(seconds, rel=0.05, abs=1e-300)
        assert len(text[:-1].lstrip("-0.").replace(".", "").rstrip("0").split("e")[0]) <= 2
        return
    if whole < 0:
        assert text == ""  # no unit fits a negative duration
        return
    match = _DURATION_TEXT.fullmatch(text)
    assert text and match is not None, text
    assert parse_duration(text) == whole
    counts = dict(zip("wdhms", match.groups(), strict=True))
    for unit, count in counts.items():
        assert count is None or (int(count) > 0 and int(count) < _BELOW_NEXT.get(unit, 10**9))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1s"),
        (59.6, "1m"),
        (600, "10m"),
        (5400, "1h30m"),
        (90061, "1d1h1m1s"),
        (1209600, "2w"),
        (694861, "1w1d1h1m1s"),
        (0.4, "0.4s"),
        (0, "0s"),
        (None, "permanent"),
    ],
)
def test_format_duration_examples(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text
    assert_duration_text(seconds, text)  # the checker agrees with hand-written texts


@given(
    st.lists(
        st.none()
        | st.floats(min_value=-1e6, max_value=1e9, allow_nan=False)
        | st.integers(-100, 10**7)
        | st.sampled_from([0.0, -0.0, 0, 0.4, 0.5, 1.5, True, 600, 600.0]),
        max_size=30,
    )
)
def test_format_duration_cache_gives_the_plain_text(values: list[float | None]) -> None:
    for value in values + values[::-1]:  # again, from the cache
        assert_duration_text(value, format_duration(value))


def as_bucket(rule: RuleSpec, entry: Bucket | First) -> Bucket:
    """A table entry as a bucket: a key's first event record is one event's bucket."""
    if isinstance(entry, tuple):
        return _from_first(BUCKET_TYPES[rule.bucket], rule, entry)
    return entry


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=400, allow_nan=False),
            st.sampled_from([Kind.WRONG_PASSWORD, Kind.UNKNOWN_ACCOUNT, Kind.CALL_REJECTED]),
            st.integers(0, 30),
        ),
        max_size=120,
    ),
    st.lists(st.floats(min_value=0, max_value=5000, allow_nan=False), min_size=1, max_size=8),
)
def test_expire_drops_what_bucket_idle_says(
    spec: list[tuple[float, Kind, int]], checks: list[float]
) -> None:
    """expire() inlines Bucket.idle: it drops, per table in last-touch order, the idle keys
    before the first live one, and nothing else."""
    engine = Engine(load_rules())
    t = 1_800_000_000.0
    for gap, kind, n in spec:
        t += gap
        engine.feed(Event(t, kind, Service.PJSIP, ip_address(f"192.0.2.{n}"), account="1"), t)
    for offset in sorted(checks):
        now = t + offset
        tables: dict[str, OrderedDict[str, Bucket | First]] = engine._tables
        want = {}
        for rule in engine.rules:
            table = tables[rule.id]
            keys = list(table)
            n = 0
            while n < len(keys) and as_bucket(rule, table[keys[n]]).idle(now):
                n += 1
            want[rule.id] = keys[n:]
        before = engine.state_size()
        dropped = engine.expire(now)
        assert {rid: list(table) for rid, table in tables.items()} == want
        assert dropped == before - engine.state_size()
