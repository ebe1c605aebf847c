"""The fleet's pure message layer: signing, hostile input, replay, quorum, admission."""

from __future__ import annotations

import json
from ipaddress import ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core import Action, Decision
from sipguard.fleet.wire import (
    MAX_MESSAGE,
    FleetMessage,
    Quorum,
    Rejected,
    ReplayGuard,
    SeqClock,
    admit,
    check_key,
    from_decision,
    latest_per_target,
    shared,
    sign,
    verify,
)
from sipguard.policy import AllowList

KEY = b"k" * 32
NOW = 1_800_000_000.0


def msg(**kw: object) -> FleetMessage:
    base: dict[str, object] = {
        "kind": "ban",
        "node": "pbx1",
        "seq": 10,
        "sent": NOW,
        "target": "203.0.113.9/32",
        "rule": "pjsip-auth",
        "reason": "5 wrong passwords",
        "level": 1,
        "start": NOW,
        "expires": NOW + 600,
        "evidence": "5 events",
    }
    base.update(kw)
    return FleetMessage(**base)  # type: ignore[arg-type]


def reason(raw: bytes, key: bytes = KEY) -> str:
    with pytest.raises(Rejected) as exc:
        verify(raw, key)
    return exc.value.reason


def test_round_trip() -> None:
    m = msg()
    assert verify(sign(m, KEY), KEY) == m
    assert verify(sign(m, KEY), KEY, own="pbx2") == m
    with pytest.raises(Rejected) as exc:  # this node's own message, read back
        verify(sign(m, KEY), KEY, own="pbx1")
    assert exc.value.reason == "own"
    assert m.network() is m.network()  # parsed once per address


def test_forged_unsigned_oversized_malformed() -> None:
    good = sign(msg(), KEY)
    assert reason(good, b"x" * 32) == "forged"
    body = good.partition(b".")[2]
    assert reason(body) == "unsigned"
    tampered = good.replace(b"203.0.113.9", b"203.0.113.8")
    assert reason(tampered) == "forged"
    assert reason(b"0" * 64 + b"." + b"a" * (MAX_MESSAGE + 10)) == "oversized"
    with pytest.raises(Rejected) as exc:
        sign(msg(reason="x" * 10_000, evidence="y" * 10_000, rule="z" * 5000), KEY)
    assert exc.value.reason == "oversized"


def _signed_body(obj: object) -> bytes:
    import hashlib
    import hmac

    body = json.dumps(obj).encode()
    return hmac.new(KEY, body, hashlib.sha256).hexdigest().encode() + b"." + body


@pytest.mark.parametrize(
    "change",
    [
        {"k": "nuke"},
        {"n": "bad node!"},
        {"x": "not-an-ip"},
        {"q": -1},
        {"q": True},
        {"t": "yesterday"},
        {"e": float("inf")},
        {"v": 2},
        {"r": 5},
        {"k": "range", "x": "12ab"},
    ],
)
def test_signed_but_malformed(change: dict[str, object]) -> None:
    obj = msg().to_json()
    obj.update(change)
    assert reason(_signed_body(obj)) == "malformed"
    assert reason(_signed_body([1, 2])) == "malformed"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_garbage_never_crashes(data: bytes) -> None:
    with pytest.raises(Rejected):
        verify(data, KEY)
    body = data[:MAX_MESSAGE]
    with pytest.raises(Rejected):
        verify(_signed_raw(body), KEY)


def _signed_raw(body: bytes) -> bytes:
    import hashlib
    import hmac

    return hmac.new(KEY, body, hashlib.sha256).hexdigest().encode() + b"." + body


def test_key_length() -> None:
    assert check_key(b"  " + KEY + b"\n") == KEY
    with pytest.raises(ValueError, match="at least 16"):
        check_key(b"short\n")


def test_seq_clock_only_grows() -> None:
    c = SeqClock()
    a = c.next(NOW)
    b = c.next(NOW - 100)  # the clock stepped back: still larger
    assert b == a + 1
    assert c.next(NOW + 1) == int((NOW + 1) * 1_000_000)


def test_replay_guard() -> None:
    g = ReplayGuard(max_age=3600)
    m = msg()
    g.check(m, NOW)
    g.accept(m)
    for bad, why in [
        (m, "replayed"),
        (msg(seq=5), "replayed"),
        (msg(seq=11, sent=NOW - 7200), "stale"),
        (msg(seq=12, sent=NOW + 3600), "future"),
    ]:
        with pytest.raises(Rejected) as exc:
            g.check(bad, NOW)
        assert exc.value.reason == why
    g.check(msg(seq=11), NOW)
    g.check(msg(node="pbx2", seq=1), NOW)  # another node's numbers are its own
    g2 = ReplayGuard(3600)
    g2.load(g.export())
    with pytest.raises(Rejected):
        g2.check(m, NOW)


def test_quorum() -> None:
    q = Quorum(2, window=60)
    assert not q.report("x", "pbx1", NOW, NOW)
    assert not q.report("x", "pbx1", NOW + 1, NOW + 1)  # the same node twice is one report
    assert q.report("x", "pbx2", NOW + 2, NOW + 2)
    assert not q.report("y", "pbx1", NOW, NOW)
    assert not q.report("y", "pbx2", NOW + 100, NOW + 100)  # pbx1's report fell out of the window
    assert Quorum(1, 60).report("z", "a", NOW, NOW)


def test_admit_allow_list_unban_and_time() -> None:
    m = msg()
    d = admit(m, NOW + 100, AllowList([]), {})
    assert d.origin == "fleet:pbx1"
    assert d.expires == NOW + 600  # the remaining time, not a fresh 10 minutes
    assert d.action is Action.BAN and d.network == ip_network("203.0.113.9/32")
    cases = [
        (AllowList(["203.0.113.0/24"]), {}, NOW, "allow_listed"),
        (AllowList([]), {ip_network("203.0.113.9/32"): NOW + 1}, NOW, "unbanned_locally"),
        (AllowList([]), {}, NOW + 601, "expired"),
    ]
    for allow, unbanned, now, why in cases:
        with pytest.raises(Rejected) as exc:
            admit(m, now, allow, unbanned)
        assert exc.value.reason == why
    # an unban older than the remote decision does not hold a new attack back
    admit(msg(start=NOW + 5), NOW + 6, AllowList([]), {ip_network("203.0.113.9/32"): NOW})


def test_from_decision_and_no_echo() -> None:
    d = Decision(ip_network("198.51.100.7/32"), Action.BAN, "r", "why", NOW, None, 2)
    m = from_decision(d, "ban", "pbx1", 5, NOW)
    assert (m.target, m.expires, m.level, m.evidence) == ("198.51.100.7/32", None, 2, "0 events")
    assert verify(sign(m, KEY), KEY) == m
    assert shared(d) and shared(Decision(d.network, d.action, "", "", 0, None, origin="manual"))
    assert not shared(Decision(d.network, d.action, "", "", 0, None, origin="fleet:pbx2"))
    assert not shared(Decision(d.network, d.action, "", "", 0, None, origin="blocklist:x"))


def test_latest_per_target() -> None:
    a, b, c = msg(seq=1), msg(seq=2, sent=NOW + 1), msg(seq=3, target="10.0.0.0/8")
    assert latest_per_target([b, a, c]) == [b, c] or latest_per_target([b, a, c]) == [c, b]
    assert set(latest_per_target([b, a, c])) == {b, c}
