"""Property tests: any event stream keeps the engine's invariants; any bytes split into whole
lines without loss."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.config.rules import load_rules
from sipguard.core.events import Event, Kind, Service
from sipguard.detect import Engine
from sipguard.report.scan import ChunkSplitter

RULES = load_rules()
BY_ID = {r.id: r for r in RULES}
IPS = ["203.0.113.1", "203.0.113.2", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1", None]
KINDS = [k for k in Kind]

events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=120, allow_nan=False),  # gap to the previous event
        st.sampled_from(KINDS),
        st.sampled_from(IPS),
        st.sampled_from(["1001", "1002", "admin", None]),
        st.sampled_from(["sipvicious", "Linphone", None]),
        st.sampled_from(["100", "0044201234567", None]),
    ),
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(events, st.integers(min_value=1, max_value=8))
def test_engine_invariants(stream: list[tuple], max_keys: int) -> None:
    eng = Engine(RULES, max_keys=max_keys)
    t = 1_800_000_000.0
    seen: list[Event] = []
    for gap, kind, ip, account, ua, target in stream:
        t += gap
        e = Event(
            t,
            kind,
            Service.PJSIP,
            ip_address(ip) if ip else None,
            account=account,
            user_agent=ua,
            target=target,
        )
        seen.append(e)
        for alert in eng.feed(e, t):
            rule = BY_ID[alert.rule]
            assert 0 < len(alert.events) <= rule.evidence
            assert alert.events[-1] is e, "the crossing event is the last piece of evidence"
            assert all(rule.matches(x) for x in alert.events)
            if alert.network is not None:
                assert all(x.ip is not None and x.ip in alert.network for x in alert.events)
            else:
                assert alert.key == f"account:{e.account}"
            if rule.bucket.value == "counter" and rule.threshold <= len(alert.events):
                span = alert.events[-1].time - alert.events[-rule.threshold].time
                assert span <= rule.window
        assert eng.state_size() <= max_keys * len(RULES)
    eng.expire(t + 10 * 366 * 86400)
    assert eng.state_size() == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_chunk_splitter_loses_nothing(reads: list[bytes]) -> None:
    splitter = ChunkSplitter()
    pieces = [p for r in reads for p in splitter.feed(r)] + list(splitter.flush())
    joined = b"".join(data for data, _ in pieces)
    original = b"".join(reads)
    assert joined == (original if original.endswith(b"\n") or not original else original + b"\n")
    line = 1
    for data, first in pieces:
        assert data.endswith(b"\n") and first == line
        line += data.count(b"\n")
