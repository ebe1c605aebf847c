"""The fraud rule kinds of detect/: pure detectors reading the call facts the edge filled in."""

from __future__ import annotations

from sipguard.core.events import CallInfo, Event, Kind, Service
from sipguard.detect.fraudkinds import FRAUD_KINDS, Finding, RiskyDestination


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
