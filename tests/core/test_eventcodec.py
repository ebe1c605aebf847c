"""core.eventcodec: an Event written by `to_dict` in another process comes back equal, and
anything else (garbage, wrong types, out of range, oversized text) is InvalidEvent, never any
other exception."""

from __future__ import annotations

import json
import math
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.eventcodec import MAX_TEXT, InvalidEvent, event_from_obj
from sipguard.core.events import CallInfo, Event, Kind, Origin, Service

SENSOR = Event(
    time=1_765_000_000.25,
    kind=Kind.SCANNER_PROBE,
    service=Service.SENSOR,
    ip=ip_address("203.0.113.9"),
    port=5070,
    transport="udp",
    target="sip:100@pbx",
    user_agent="friendly-scanner",
    call_id="abc",
    detail="scanner signature",
    origin=Origin("sensor", 0, "OPTIONS sip:100@pbx SIP/2.0"),
)
CALL = Event(
    time=1_765_000_100.0,
    kind=Kind.CALL_END,
    service=Service.AMI,
    ip=ip_address("2001:db8::5"),
    account="1001",
    call=CallInfo("1765.1", "PJSIP/1001-0001", 1.0, 2.0, 30.0, 28.0, True, True, 7, "office"),
)


def wire(event: Event) -> Any:
    """What the other process's JSON line decodes to."""
    return json.loads(json.dumps(event.to_dict()))


@pytest.mark.parametrize("event", [SENSOR, CALL, Event(0, Kind.LIMIT, Service.UNKNOWN)])
def test_what_to_dict_writes_comes_back_equal(event: Event) -> None:
    assert event_from_obj(wire(event)) == event


def sensor_with(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = wire(SENSOR)
    for key, value in changes.items():
        if "." in key:
            outer, inner = key.split(".")
            obj[outer][inner] = value
        else:
            obj[key] = value
    return obj


def call_with(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = wire(CALL)
    obj["call"].update(changes)
    return obj


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        "event",
        42,
        {},
        sensor_with(extra=1),  # a field to_dict never writes
        {k: v for k, v in wire(SENSOR).items() if k != "time"},
        sensor_with(time="now"),
        sensor_with(time=True),
        sensor_with(time=-1),
        sensor_with(time=1e300),
        sensor_with(time=math.nan),
        sensor_with(time=math.inf),
        sensor_with(kind="root_shell"),
        sensor_with(kind=None),
        sensor_with(service="kernel"),
        sensor_with(ip="999.1.1.1"),
        sensor_with(ip=3405803785),
        sensor_with(ip="1" * 100),
        sensor_with(port=-1),
        sensor_with(port=65536),
        sensor_with(port=True),
        sensor_with(port="5060"),
        sensor_with(port=5060.0),
        sensor_with(user_agent=["a"]),
        sensor_with(account=7),
        sensor_with(detail=None),
        sensor_with(target="x" * (MAX_TEXT + 1)),
        sensor_with(origin="sensor"),
        sensor_with(origin={"source": "sensor", "line": 0, "text": "", "more": 1}),
        sensor_with(**{"origin.line": -1}),
        sensor_with(**{"origin.line": "3"}),
        sensor_with(**{"origin.text": "y" * (MAX_TEXT + 1)}),
        sensor_with(**{"origin.source": None}),
        sensor_with(call=[]),
        call_with(uid=5),
        call_with(start="0"),
        call_with(answer="later"),
        call_with(end=math.inf),
        call_with(answered="yes"),
        call_with(line=-3),
        call_with(dest="+4420"),  # derived, never written: not accepted either
    ],
)
def test_anything_else_is_invalid(obj: object) -> None:
    with pytest.raises(InvalidEvent):
        event_from_obj(obj)


def test_text_at_the_limit_is_kept_whole() -> None:
    ua = "é" * MAX_TEXT
    assert event_from_obj(sensor_with(user_agent=ua)).user_agent == ua


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)
FIELDS = st.sampled_from([*sorted(wire(SENSOR)), "call", "nope"])


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(FIELDS, JSON, max_size=4), garbage=JSON)
def test_random_values_never_raise_anything_but_invalid_event(
    changes: dict[str, Any], garbage: Any
) -> None:
    for obj in (sensor_with(**changes), call_with(**changes), garbage):
        try:
            event = event_from_obj(obj)
        except InvalidEvent:
            continue
        assert isinstance(event, Event)
