"""Search matchers remember results per subject text: the same answers as a fresh search, on
text fields and on fields printed as text, past the subject bound, and past the memory bound."""

from __future__ import annotations

import re
from ipaddress import ip_address

from sipguard.core.events import Event, Kind, Service
from sipguard.detect import build_matcher, matchers
from sipguard.detect.matchers import MAX_SUBJECT, field_text


def ev(**fields: object) -> Event:
    return Event(1.0, Kind.WRONG_PASSWORD, Service.PJSIP, ip_address("192.0.2.1"), **fields)  # type: ignore[arg-type]


def test_fields_printed_as_text() -> None:
    port = build_matcher({"field": "port", "op": "regex", "value": "^50"}, "m", {})
    kind = build_matcher({"field": "kind", "op": "regex", "value": "password$"}, "m", {})
    ip = build_matcher({"field": "ip", "op": "regex", "value": r"^192\.0\.2\."}, "m", {})
    for p in (5060, 5061, 6050, None):
        e = ev(port=p)
        assert port(e) is (p is not None and str(p).startswith("50"))
        assert kind(e) and ip(e)


def test_subject_bound_and_repeats() -> None:
    m = build_matcher(
        {"field": "user_agent", "op": "contains_any", "values": ["SIPVicious"]}, "m", {}
    )
    far = "x" * MAX_SUBJECT + "sipvicious"  # past the bound: not searched
    near = "x" * (MAX_SUBJECT - 10) + "sipvicious"
    for _ in range(3):  # asked again: the remembered answer
        assert not m(ev(user_agent=far))
        assert m(ev(user_agent=near))
        assert not m(ev(user_agent=None)) and not m(ev(user_agent=""))


def test_memory_bound_keeps_answers_right() -> None:
    m = build_matcher({"field": "target", "op": "regex", "value": r"^00\d+7$"}, "m", {})
    rx = re.compile(r"^00\d+7$")
    n = matchers._RESULTS_MAX * 2 + 17
    for round_ in range(2):
        for i in range(0, n, 7 if round_ else 1):
            e = ev(target=f"00{i}")
            assert m(e) is (rx.search(field_text(e, "target") or "") is not None)
