"""The engine's inlined fast paths (per-kind plans, identity-cached source keys, bucket classes
per kind, tallies skipped after an episode alerts, cached matcher results) against a plain
reference: each rule's own `matches`, `source_key`, and the generic `Bucket.add`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.config.rules import load_rules
from sipguard.core.alerts import Alert
from sipguard.core.events import Event, Kind, Service
from sipguard.detect import Engine, GroupBy, RuleSpec, build_matcher, source_key
from sipguard.detect.accounts import AccountWatch
from sipguard.detect.buckets import Bucket
from sipguard.detect.engine import _alert, source_network
from sipguard.detect.matchers import field_text

# shared address objects, as the log parser's cache gives, and equal twins that are not
ADDRESSES = ["203.0.113.1", "203.0.113.2", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1"]
IPS = [ip_address(a) for a in ADDRESSES]
TWINS = [ip_address(a) for a in ADDRESSES]


def reference_alerts(rules: list[RuleSpec], stream: list[tuple[Event, float]]) -> list[Alert]:
    tables: dict[str, OrderedDict[str, Bucket]] = {r.id: OrderedDict() for r in rules}
    watch = AccountWatch()  # the named conditions' state (its own tests: test_account_response)
    watched = {r.account_alerted_by for r in rules}
    out = []
    for event, now in stream:
        if event.kind is Kind.AUTH_SUCCESS:
            watch.authenticated(event, now)
        watch.now = now
        raised = []
        for rule in rules:
            if not rule.matches(event) or not watch.admits(rule, event):
                continue
            ip = event.ip
            src = None
            if ip is not None:
                src = source_key(ip, rule.ipv4_prefix if ip.version == 4 else rule.ipv6_prefix)
            value = field_text(event, rule.distinct_field) if rule.distinct_field else None
            if rule.group_by is GroupBy.SOURCE:
                key = src
            elif event.account is None:
                key = None
            else:
                key = f"account:{event.account}"
                if rule.group_by is GroupBy.ACCOUNT_DISTINCT_SOURCES:
                    key, value = (key, src) if src is not None else (None, None)
            if key is None:
                continue
            table = tables[rule.id]
            bucket = table.get(key)
            if bucket is None:
                bucket = table[key] = Bucket(rule, now)  # the generic class, no subclass
            table.move_to_end(key)
            if bucket.add(event, now, value):
                network = source_network(rule, event) if key == src else None
                out.append(_alert(rule, key, network, bucket, now))
                if rule.id in watched and network is None and event.account is not None:
                    raised.append((rule, event.account, bucket.distinct(), out[-1].reason))
        for rule, account, sources, why in raised:
            watch.alerted(rule, account, sources, now, why)
    return out


def extra_rules(rules: list[RuleSpec]) -> list[RuleSpec]:
    """Wider prefixes (a second prefix pair), account grouping, a regex and a cidr matcher."""
    by_id = {r.id: r for r in rules}
    cidr = build_matcher(
        {"field": "ip", "op": "cidr", "values": ["203.0.113.0/24", "2001:db8::/32"]}, "m", {}
    )
    regex = build_matcher({"field": "user_agent", "op": "regex", "value": "^(Lin|sip)"}, "m", {})
    return [
        replace(
            by_id["password-guessing"],
            id="wide-leaky",
            kinds=frozenset({Kind.WRONG_PASSWORD, Kind.UNKNOWN_ACCOUNT}),
            matchers=(cidr,),
            threshold=3,
            window=30.0,
            ipv4_prefix=24,
            ipv6_prefix=48,
        ),
        replace(
            by_id["request-flood"],
            id="per-account",
            kinds=frozenset({Kind.WRONG_PASSWORD}),
            matchers=(regex,),
            group_by=GroupBy.ACCOUNT,
            threshold=3,
            window=60.0,
        ),
    ]


items = st.lists(
    st.tuples(
        st.floats(min_value=-20, max_value=200, allow_nan=False),  # gap: some go backwards
        st.sampled_from(
            [
                Kind.WRONG_PASSWORD,
                Kind.UNKNOWN_ACCOUNT,
                Kind.AUTH_NAME_MISMATCH,
                Kind.CALL_REJECTED,
                Kind.CHALLENGE_UNANSWERED,
                Kind.AUTH_SUCCESS,
            ]
        ),
        st.integers(0, len(IPS)),  # len(IPS): no address
        st.booleans(),  # the shared object or an equal twin
        st.sampled_from(["1001", "1002", "admin", None]),
        st.sampled_from(["sipvicious", "friendly-scanner x", "Linphone", None]),
        st.sampled_from(["100", "0044201234567", None]),
    ),
    max_size=250,
)


@settings(max_examples=80, deadline=None)
@given(items)
def test_same_alerts_as_the_reference(stream_spec: list[tuple]) -> None:
    rules = [r for r in load_rules() if r.enabled]
    rules += extra_rules(rules)
    t = 1_800_000_000.0
    stream = []
    for gap, kind, n, shared, account, ua, target in stream_spec:
        t += gap
        ip = None if n == len(IPS) else (IPS if shared else TWINS)[n]
        event = Event(t, kind, Service.PJSIP, ip, account=account, user_agent=ua, target=target)
        stream.append((event, t))
    engine = Engine(rules)
    got = [a for e, now in stream for a in engine.feed(e, now)]
    want = reference_alerts(rules, stream)
    assert [(a.rule, a.key, a.time, a.network, a.reason) for a in got] == [
        (a.rule, a.key, a.time, a.network, a.reason) for a in want
    ]
    assert [[id(e) for e in a.events] for a in got] == [[id(e) for e in a.events] for a in want]
    assert engine.stats.alerts == len(want)
