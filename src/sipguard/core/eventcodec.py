"""An Event read back from JSON that another process wrote: checked field by field first.

`Event.to_dict` is the one encoding (control API, store, `--format json`) and `Event.from_dict`
the one decoding, but `from_dict` trusts its input: a missing key, a string where a number
belongs or a megabyte of text would raise anything or be kept whole. `event_from_obj` checks
every field's type, range and length and only then hands the object to `from_dict`, so the
only exception a hostile or broken writer can cause is `InvalidEvent`.
"""

from __future__ import annotations

import math
from ipaddress import ip_address

from sipguard.core.events import Event, Kind, Service

MAX_TEXT = 4096  # characters in one text field (the sensor clips attacker text far below this)
MAX_TIME = 1e11  # POSIX seconds: year 5138; anything larger is garbage, not a time
MAX_LINE_NO = 1 << 62

_KINDS = frozenset(k.value for k in Kind)
_SERVICES = frozenset(s.value for s in Service)
_OPTIONAL_TEXT = ("transport", "account", "target", "user_agent", "call_id")
_KEYS = frozenset(
    {"time", "kind", "service", "ip", "port", "detail", "origin", "call", *_OPTIONAL_TEXT}
)
_CALL_TEXT = ("uid", "channel", "context")
_CALL_TIMES = ("start", "billsec")
_CALL_OPTIONAL_TIMES = ("answer", "end")
_CALL_FLAGS = ("answered", "record")
_CALL_KEYS = frozenset({*_CALL_TEXT, *_CALL_TIMES, *_CALL_OPTIONAL_TIMES, *_CALL_FLAGS, "line"})


class InvalidEvent(ValueError):
    """The object is not an Event as `Event.to_dict` writes it; the message says which field."""


def event_from_obj(obj: object) -> Event:
    """The Event `obj` (a parsed JSON object) describes, or InvalidEvent."""
    if not isinstance(obj, dict):
        raise InvalidEvent("not an object")
    unknown = set(obj) - _KEYS
    if unknown:
        raise InvalidEvent(f"unknown field {sorted(map(str, unknown))[0][:40]!r}")
    _time(obj.get("time"), "time", required=True)
    for key, known in (("kind", _KINDS), ("service", _SERVICES)):
        value = obj.get(key)  # a list or an object is not hashable: test the type first
        if not isinstance(value, str) or value not in known:
            raise InvalidEvent(f"{key}: not a known {key}")
    ip = obj.get("ip")
    if ip is not None:
        _text(ip, "ip", 64)
        try:
            ip_address(ip)
        except ValueError:
            raise InvalidEvent("ip: not an address") from None
    port = obj.get("port")
    if port is not None and not _int_in(port, 0, 65535):
        raise InvalidEvent("port: not 0-65535")
    for key in _OPTIONAL_TEXT:
        if obj.get(key) is not None:
            _text(obj[key], key)
    _text(obj.get("detail", ""), "detail")
    origin = obj.get("origin")
    if origin is not None:
        _origin(origin)
    call = obj.get("call")
    if call is not None:
        _call(call)
    try:
        return Event.from_dict(obj)
    except (TypeError, ValueError, KeyError, AssertionError) as exc:  # a check above missed it
        raise InvalidEvent(f"not an event: {str(exc)[:80]}") from None


def _origin(origin: object) -> None:
    if not isinstance(origin, dict) or set(origin) - {"source", "line", "text"}:
        raise InvalidEvent("origin: not {source, line, text}")
    _text(origin.get("source", ""), "origin.source")
    _text(origin.get("text", ""), "origin.text")
    if not _int_in(origin.get("line", 0), 0, MAX_LINE_NO):
        raise InvalidEvent("origin.line: not a line number")


def _call(call: object) -> None:
    if not isinstance(call, dict) or set(call) - _CALL_KEYS:
        raise InvalidEvent("call: not a call's facts")
    for key in _CALL_TEXT:
        _text(call.get(key, ""), f"call.{key}")
    for key in _CALL_TIMES:
        _time(call.get(key, 0.0), f"call.{key}", required=True)
    for key in _CALL_OPTIONAL_TIMES:
        _time(call.get(key), f"call.{key}", required=False)
    for key in _CALL_FLAGS:
        if not isinstance(call.get(key, False), bool):
            raise InvalidEvent(f"call.{key}: not true/false")
    if not _int_in(call.get("line", 0), 0, MAX_LINE_NO):
        raise InvalidEvent("call.line: not a line number")


def _text(value: object, key: str, limit: int = MAX_TEXT) -> None:
    if not isinstance(value, str):
        raise InvalidEvent(f"{key}: not a string")
    if len(value) > limit:
        raise InvalidEvent(f"{key}: longer than {limit} characters")


def _time(value: object, key: str, required: bool) -> None:
    if value is None and not required:
        return
    # bool is an int to Python, never a time to us
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"{key}: not a number")
    if not math.isfinite(value) or not 0 <= value <= MAX_TIME:
        raise InvalidEvent(f"{key}: out of range")


def _int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
