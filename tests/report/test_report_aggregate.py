"""ScanReport.add_event's inlined counting and identity-cached keys against a plain reference:
the same report (to_dict) for any stream, whether events share address objects or not."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.events import ATTACK_KINDS, Event, Kind, Origin, Service
from sipguard.report import aggregate
from sipguard.report.aggregate import ScanReport, source_key

ADDRESSES = ["192.0.2.1", "192.0.2.2", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::9"]
IPS = [ip_address(a) for a in ADDRESSES]


def bump(counts: dict[str, int], key: str, cap: int) -> None:
    if key in counts or len(counts) < cap:
        counts[key] = counts.get(key, 0) + 1


def reference(events: list[Event]) -> dict[str, object]:
    """The aggregation written plainly (as it was before it was made fast)."""
    r = ScanReport()
    for e in events:
        attack = e.is_attack
        key = source_key(e)
        if key is None:
            r.unattributed += attack
        else:
            a = r.sources.get(key)
            if a is None and attack:
                a = r.sources[key] = aggregate.Attacker(key, e.time, e.time)
            if a is not None:
                a.first, a.last = min(a.first, e.time), max(a.last, e.time)
                if e.kind in (Kind.AUTH_SUCCESS, Kind.AMI_LOGIN_SUCCESS):
                    a.successes += 1
                elif attack:
                    a.events += 1
                    bump(a.kinds, e.kind.value, 64)
                    if e.account is not None:
                        bump(a.accounts, e.account[:200], aggregate.KEEP_ACCOUNTS)
                    if e.user_agent:
                        bump(a.user_agents, e.user_agent[:200], aggregate.KEEP_AGENTS)
                    if key.endswith("/64") and len(a.addresses) < aggregate.KEEP_ADDRESSES:
                        a.addresses.add(str(e.ip))
                    if e.service.value not in a.services:
                        a.services[e.service.value] = None
                    if len(a.lines) < aggregate.KEEP_LINES and e.origin.text:
                        a.lines.append(f"{e.origin.source}:{e.origin.line_no}: {e.origin.text}")
        if not attack:
            continue
        if e.account is not None:
            acc = r.accounts.get(e.account)
            if acc is None:
                acc = r.accounts[e.account] = aggregate.AccountUnderAttack(
                    e.account[:200], e.time, e.time
                )
            acc.first, acc.last = min(acc.first, e.time), max(acc.last, e.time)
            acc.events += 1
            bump(acc.kinds, e.kind.value, 64)
            if key is not None and len(acc.sources) < aggregate.COUNT_SOURCES:
                acc.sources.add(key)
        counts = r.timeline.setdefault(int(e.time // 60) * 60, {})
        counts[e.kind.value] = counts.get(e.kind.value, 0) + 1
    return r.to_dict()


stream = st.lists(
    st.tuples(
        st.floats(min_value=-30, max_value=90, allow_nan=False),
        st.sampled_from(list(Kind)),
        st.sampled_from([Service.PJSIP, Service.CHAN_SIP, Service.AMI]),
        st.integers(0, len(IPS)),
        st.booleans(),  # the shared address object, or an equal fresh one
        st.one_of(st.none(), st.integers(0, 70).map(str)),  # > KEEP_ACCOUNTS accounts
        st.one_of(st.none(), st.just(""), st.integers(0, 14).map(lambda n: f"ua{n}")),
        st.sampled_from(["", "a line"]),
    ),
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(stream)
def test_same_report_as_the_reference(spec: list[tuple]) -> None:
    t = 1_800_000_000.0
    events = []
    for n, (gap, kind, service, i, shared, account, agent, text) in enumerate(spec):
        t += gap
        ip = None if i == len(IPS) else IPS[i] if shared else ip_address(ADDRESSES[i])
        events.append(
            Event(
                t,
                kind,
                service,
                ip,
                account=account,
                user_agent=agent,
                origin=Origin("messages", n + 1, text),
            )
        )
    report = ScanReport()
    for e in events:
        report.add_event(e)
    assert report.to_dict() == reference(events)
    # and with the caps small enough that every stream reaches them
    caps = {"KEEP_ACCOUNTS": 3, "KEEP_AGENTS": 2, "KEEP_ADDRESSES": 1, "COUNT_SOURCES": 2}
    saved = {name: getattr(aggregate, name) for name in caps}
    try:
        for name, value in caps.items():
            setattr(aggregate, name, value)
        report = ScanReport()
        for e in events:
            report.add_event(e)
        assert report.to_dict() == reference(events)
    finally:
        for name, value in saved.items():
            setattr(aggregate, name, value)
    assert report.unattributed == sum(e.ip is None and e.kind in ATTACK_KINDS for e in events)
