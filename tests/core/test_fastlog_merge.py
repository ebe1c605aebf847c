"""One attempt seen as the module's log line and as a security event (security log, AMI) is one
event that knows what both copies know, whichever copy arrives first (issue 12 item 10: svmap's
From display name, which only the log line has, was lost when the AMI copy came first).
The Python linker and the C one must agree."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from sipguard.config.rules import load_rules
from sipguard.core.asterisk import LogNormalizer, parse_security_fields, security_event
from sipguard.core.events import Event, Kind, Origin
from sipguard.detect.engine import Engine

# svmap's OPTIONS as Asterisk 20.20.1 logged it (messages) and its InvalidAccountID
NOTICE = (
    "[2026-11-22 01:34:38.416] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'OPTIONS' "
    "from '\"sipvicious\" <sip:100@1.1.1.1>' failed for '10.99.7.12:5060' "
    "(callid: 112717373465392047778909) - No matching endpoint found"
)
SECURITY = (
    "[2026-11-22 01:34:38.416] SECURITY[18584] res_security_log.c: "
    'SecurityEvent="InvalidAccountID",EventTV="2026-11-22T01:34:38.416+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
    'AccountID="100",SessionID="112717373465392047778909",'
    'LocalAddress="IPV4/UDP/10.99.7.1/5060",RemoteAddress="IPV4/UDP/10.99.7.12/5060"'
)


def _python() -> LogNormalizer:
    return LogNormalizer(default_year=2026)


def _native() -> object:
    from sipguard.core.asterisk import fast

    if not fast.available():
        if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
            pytest.fail("the C normalizer is required but not built")
        pytest.skip("C normalizer not built (scripts/build-native)")
    return fast.FastNormalizer(2026)


def _ami() -> Event:
    fields = parse_security_fields(SECURITY)
    fields.pop("SecurityEvent")
    ev = security_event({"Event": "InvalidAccountID", **fields}, None, Origin("ami"))
    assert ev is not None
    return ev


def _run(n: object, order: str) -> list[Event]:
    out: list[Event] = []
    for step in order.split(","):
        if step == "ami":
            out += n.accept(_ami())  # type: ignore[attr-defined]
        elif step == "notice":
            out += n.feed_chunk(NOTICE.encode() + b"\n", "messages", 1)  # type: ignore[attr-defined]
        else:  # the security line in messages, then in the security file
            out += n.feed_chunk(SECURITY.encode() + b"\n", step, 2)  # type: ignore[attr-defined]
    return out + n.flush()  # type: ignore[attr-defined]


ORDERS = [
    "ami,notice,messages,security",  # AMI first: the copy without the display name
    "notice,messages,security,ami",  # the log first
    "security,ami,notice,messages",  # the security file first
    "ami,notice",  # AMI and messages' NOTICE only (a logger without `security` in messages)
]


@pytest.mark.parametrize("make", [_python, _native], ids=["python", "c"])
@pytest.mark.parametrize("order", ORDERS)
def test_copies_count_once_and_keep_the_display_name(make: Callable[[], object], order: str):
    n = make()
    out = _run(n, order)
    assert [(e.kind, str(e.ip), e.account) for e in out] == [
        (Kind.UNKNOWN_ACCOUNT, "10.99.7.12", "100")
    ]
    assert out[0].user_agent == "sipvicious"  # what only the log line knew
    scanner = next(r for r in load_rules() if r.id == "scanner-signature")
    alerts = Engine([scanner]).feed_many(out)
    assert [a.key for a in alerts] == ["10.99.7.12"]


def test_a_security_event_whose_line_never_comes_is_released() -> None:
    for n in (_python(), _native()):
        first = n.accept(_ami())  # type: ignore[attr-defined]
        assert first == [] and n.tick(_ami().time + 0.1) == []  # type: ignore[attr-defined]
        later = n.tick(_ami().time + 0.3)  # type: ignore[attr-defined]
        assert [(e.kind, e.user_agent) for e in later] == [(Kind.UNKNOWN_ACCOUNT, None)]
