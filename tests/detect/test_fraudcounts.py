"""The fraud rule kinds that count calls (fraudcounts) and keep ledgers (fraudledger): each
fires at its threshold and not one below, keeps its state bounded, and answers both through
`feed(event)` and through the typed entries the CDR loop calls."""

from __future__ import annotations

from sipguard.core.events import CallInfo, Event, Kind, Service
from sipguard.detect.findings import MAX_LIVE_CALLS, NOTHING, Finding
from sipguard.detect.fraudcounts import (
    MAX_INTERVALS,
    MAX_RANGES,
    MAX_TRUNKS,
    Concurrent,
    InboundVolume,
    ShortBurst,
    Velocity,
)
from sipguard.detect.fraudkinds import FRAUD_KINDS
from sipguard.detect.fraudledger import NewCountry, Spend
from sipguard.detect.fraudrules import FRAUD_DETECTORS

T = 1_800_000_000.0


def _ev(
    kind: Kind,
    uid: str,
    start: float,
    end: float | None = None,
    account: str = "1001",
    **facts: object,
) -> Event:
    info = CallInfo(uid=uid, start=start, end=end, **facts)  # type: ignore[arg-type]
    return Event(
        time=end if end is not None else start,
        kind=kind,
        service=Service.UNKNOWN,
        account=account,
        call=info,
    )


def _cdr(uid: str, start: float, end: float, account: str = "1001", **facts: object) -> Event:
    return _ev(Kind.CALL_END, uid, start, end, account, record=True, **facts)


def test_every_detector_is_a_kind() -> None:
    assert set(FRAUD_KINDS) == set(FRAUD_DETECTORS)
    for name, make in FRAUD_KINDS.items():
        params = {"learn_seconds": 60.0} if name == "new_country" else {}
        kind = make(params)
        assert kind.state_size() == 0 and kind.expire(T) == 0


def test_velocity_fires_above_max_calls_in_the_window_only() -> None:
    kind = Velocity({"window": 60.0, "max_calls": 3})
    assert [kind.count("1001", T + i, f"u{i}") for i in range(3)] == [NOTHING] * 3
    assert kind.count("1001", T + 3, "u3") == (
        Finding("1001", "4 calls in 60s (max 3)", ("u0", "u1", "u2", "u3")),
    )
    assert kind.count("1002", T + 3, "v0") is NOTHING  # per account
    # spread out: the window never holds more than three
    slow = Velocity({"window": 60.0, "max_calls": 3})
    assert not [f for i in range(20) for f in slow.count("1001", T + 25 * i, f"u{i}")]
    # CDR records (a call's start, checked at its end) and live dials both count
    via = FRAUD_KINDS["velocity"]({"window": 60.0, "max_calls": 1})
    assert via.feed(_cdr("c1", T, T + 5), T + 5) == []
    assert via.feed(_ev(Kind.CALL_START, "c2", T + 10), T + 10)[0].calls == ("c1", "c2")
    assert via.feed(_ev(Kind.CALL_END, "c2", T + 10, T + 20), T + 20) == []  # a live hangup


def test_velocity_state_is_bounded_and_expires() -> None:
    kind = Velocity({"window": 60.0, "max_calls": 5})
    for i in range(1000):  # a flood: the window keeps max_calls after each finding
        kind.count("1001", T + i * 0.01, f"u{i}")
    assert kind.state_size() == 5
    kind.count("1002", T + 100, "v")
    assert kind.expire(T + 70) == 1 and kind.state_size() == 1  # 1001 left the window
    kind.forget("1002")
    assert kind.state_size() == 0


def test_concurrent_offline_finds_the_exact_peak_at_the_limit() -> None:
    kind = Concurrent({"max_calls": 2})
    # a long call with two short calls one after the other inside it: never 3 at once
    assert kind.finished("1001", T + 10, T + 60, "a") is NOTHING
    assert kind.finished("1001", T + 100, T + 150, "b") is NOTHING
    assert kind.finished("1001", T, T + 600, "c") is NOTHING
    # three at once (records in hangup order): fires once the third overlaps both
    kind = Concurrent({"max_calls": 2})
    assert kind.finished("1001", T + 20, T + 50, "a") is NOTHING
    assert kind.finished("1001", T, T + 600, "b") is NOTHING  # two at once: the limit
    found = kind.finished("1001", T + 10, T + 900, "c")
    assert found == (Finding("1001", "3 calls at once (max 2)", ("b", "c", "a")),)
    # an account's own limit
    own = Concurrent({"max_calls": 2}, {"1001": 3})
    for uid, start, end in (("a", 20, 50), ("b", 0, 600), ("c", 10, 900)):
        assert own.finished("1001", T + start, T + end, uid) is NOTHING
    assert own.finished("1001", T + 5, T + 950, "d")[0].reason == "4 calls at once (max 3)"


def test_concurrent_offline_state_is_bounded_and_expires() -> None:
    kind = Concurrent({"max_calls": 1000})
    for i in range(5000):  # overlapping calls, each ending later
        kind.finished("1001", T + i, T + 10_000 + i, f"u{i}")
    assert kind.state_size() == MAX_INTERVALS
    apart = Concurrent({"max_calls": 1})
    for i in range(5000):  # calls one after the other: pruned as the list doubles
        assert apart.finished("1002", T + 10 * i, T + 10 * i + 5, f"v{i}") is NOTHING
    assert MAX_INTERVALS <= apart.state_size() <= 2 * MAX_INTERVALS + 1
    assert apart.expire(T + 49_995 + 4 * 3600) == 0  # the last could still be overlapped
    assert apart.expire(T + 49_996 + 4 * 3600) == 1 and apart.state_size() == 0
    assert kind.expire(T + 14_999 + 4 * 3600 + 1) == 1 and kind.state_size() == 0


def test_concurrent_live_counts_dials_until_their_hangups() -> None:
    kind = FRAUD_KINDS["concurrent"]({"max_calls": 2})
    assert kind.feed(_ev(Kind.CALL_START, "a", T), T) == []
    assert kind.feed(_ev(Kind.CALL_START, "b", T + 1), T + 1) == []  # two: the limit
    found = kind.feed(_ev(Kind.CALL_START, "c", T + 2), T + 2)
    assert found == [Finding("1001", "3 calls at once (max 2)", ("a", "b", "c"))]
    assert kind.feed(_ev(Kind.CALL_END, "b", T + 1, T + 3), T + 3) == []  # b hung up
    assert kind.feed(_ev(Kind.CALL_START, "d", T + 4), T + 4)[0].calls == ("a", "c", "d")
    for uid in ("a", "c", "d"):
        kind.feed(_ev(Kind.CALL_END, uid, T, T + 5), T + 5)
    assert kind.state_size() == 0
    own = Concurrent({"max_calls": 2}, {"1001": 3})
    assert [own.started("1001", T + i, f"u{i}") for i in range(3)] == [NOTHING] * 3
    assert own.started("1001", T + 3, "u3")[0].reason == "4 calls at once (max 3)"
    assert own.live_calls("1001") == 4
    own.expire(T + 10**6)  # live calls never expire (only their hangup ends them)
    assert own.live_calls("1001") == 4


def test_short_burst_fires_at_min_calls_to_one_range() -> None:
    kind = ShortBurst({"window": 300.0, "min_calls": 4, "max_seconds": 5.0, "range_digits": 2})
    assert [kind.short_call("1001", T + 10 * i, "+49301234", f"u{i}") for i in range(3)] == [
        NOTHING
    ] * 3
    assert kind.short_call("1001", T + 30, "+49301234", "u3") == (
        Finding("1001", "4 calls of <= 5s to +49301234XX in 300s", ("u0", "u1", "u2", "u3")),
    )
    other = ShortBurst({"window": 300.0, "min_calls": 4, "max_seconds": 5.0, "range_digits": 2})
    assert not [f for i in range(8) for f in other.short_call("1001", T + i, f"+49{i}", "u")]
    # feed: only finished calls of at most max_seconds count
    fed = FRAUD_KINDS["short_burst"](
        {"window": 300.0, "min_calls": 2, "max_seconds": 5.0, "range_digits": 2}
    )
    assert fed.feed(_cdr("a", T, T + 3, billsec=3.0, range_key="+4930"), T) == []
    assert fed.feed(_cdr("b", T, T + 60, billsec=60.0, range_key="+4930"), T) == []  # long
    assert fed.feed(_cdr("c", T + 9, T + 12, billsec=3.0, range_key="+4930"), T)[0].calls == (
        "a",
        "c",
    )


def test_short_burst_state_is_bounded_and_expires() -> None:
    kind = ShortBurst({"window": 60.0, "min_calls": 1000, "max_seconds": 5.0, "range_digits": 2})
    for i in range(500):
        kind.short_call("1001", T + i, f"+49{i:04d}", f"u{i}")
    assert kind.state_size() == MAX_RANGES
    assert kind.expire(T + 499 + 61) == 1 and kind.state_size() == 0


def test_spend_fires_above_the_daily_limit_and_rolls_over() -> None:
    kind = Spend({"daily_limit": 10.0}, {"1002": 1.0})
    assert kind.billed("1001", 700, 0.5, 20 * 60, "a") is NOTHING  # 10.00: at the limit
    assert kind.billed("1001", 700, 0.5, 6, "b") == (
        Finding("1001", "10.05 spent today (daily limit 10.00); this call 0.05", ("a", "b")),
    )
    assert kind.billed("1001", 701, 0.5, 60, "c") is NOTHING  # the next day starts at 0
    assert kind.billed("1002", 700, 0.5, 150, "d")[0].reason.startswith("1.25 spent")  # own
    fed = FRAUD_KINDS["spend"]({"daily_limit": 1.0})
    assert fed.feed(_cdr("e", T, T + 60, billsec=60.0, rate=1.0, day=700), T) == []
    found = fed.feed(_cdr("f", T, T + 60, billsec=60.0, rate=1.0, day=700), T)
    assert found[0].calls == ("e", "f")
    assert fed.feed(_cdr("g", T, T + 60, billsec=60.0, rate=0.0, day=700), T) == []  # no rate


def test_spend_keeps_the_last_calls_only() -> None:
    kind = Spend({"daily_limit": 0.0})
    for i in range(200):
        found = kind.billed("1001", 700, 1.0, 60, f"u{i}")
    assert len(found[0].calls) == 50 and found[0].calls[-1] == "u199"
    assert kind.state_size() == 51


def test_spend_running_cost_of_answered_live_calls() -> None:
    kind = FRAUD_KINDS["spend"]({"daily_limit": 5.0})
    assert isinstance(kind, Spend)
    kind.billed("1001", 700, 1.0, 60, "earlier")  # 1.00 already spent today
    kind.feed(_ev(Kind.CALL_START, "live", T, rate=0.5), T)
    assert kind.tick(T + 3600, 700) == []  # not answered: costs nothing
    kind.feed(_ev(Kind.CALL_ANSWER, "live", T, answer=T + 10), T + 10)
    assert kind.tick(T + 10 + 8 * 60, 700) == []  # 1.00 + 4.00 = the limit
    assert kind.tick(T + 10 + 9 * 60, 700) == [
        Finding(
            "1001", "5.50 spent today with running calls (daily limit 5.00)", ("earlier", "live")
        )
    ]
    assert kind.tick(T + 10 + 9 * 60, 701) == []  # a new day: only the running 4.50
    kind.feed(_ev(Kind.CALL_END, "live", T, T + 600, billsec=590.0), T + 600)
    assert kind.tick(T + 10**5, 700) == [] and kind.state_size() == 2  # the day's one call


def test_new_country_learns_then_fires_on_the_first_call_only() -> None:
    kind = NewCountry({"learn_seconds": 3600.0})
    assert kind.dialled("1001", "FR", T, "a", "+33123") is NOTHING  # the first call starts it
    assert kind.learn_until == T + 3600
    assert kind.dialled("1001", "IT", T + 3599, "b", "+39123") is NOTHING  # still learning
    assert kind.dialled("1001", "JP", T + 3600, "c", "+81312") == (
        Finding("1001", "first call to JP (+81312)", ("c",)),
    )
    assert kind.dialled("1001", "JP", T + 3700, "d", "+81313") is NOTHING  # known now
    assert kind.dialled("1002", "FR", T + 3700, "e", "+33124") != NOTHING  # per account
    fed = FRAUD_KINDS["new_country"]({"learn_seconds": 0.0})
    national = _cdr("f", T, T + 5, scope="national", country="DE", dest="+4930")
    assert fed.feed(national, T) == []
    far = _ev(Kind.CALL_START, "g", T, scope="international", country="BR", dest="+5511")
    assert fed.feed(far, T)[0].reason == "first call to BR (+5511)"
    assert fed.state_size() == 1 and fed.expire(T + 10**9) == 0  # countries are kept


def test_new_country_baseline_round_trip() -> None:
    kind = NewCountry({"learn_seconds": 3600.0})
    kind.dialled("1001", "GB", T, "a", "+44")
    kind.dialled("1001", "AT", T, "b", "+43")
    saved = kind.baseline()
    assert saved == {"1001": ["AT", "GB"]}
    again = NewCountry({"learn_seconds": 3600.0})
    again.load_baseline({**saved, "1003": []})
    assert again.learn_until == float("-inf")  # a baseline ends learning
    assert again.dialled("1001", "GB", T, "c", "+44") is NOTHING
    assert again.dialled("1001", "US", T, "d", "+1")[0].calls == ("d",)
    assert again.baseline() == {"1001": ["AT", "GB", "US"]}  # empty accounts are left out


def test_inbound_volume_per_trunk() -> None:
    kind = InboundVolume({"window": 60.0, "max_calls": 2})
    assert kind.count("trunk", T, "a") is NOTHING
    assert kind.count("trunk", T + 1, "b") is NOTHING
    assert kind.count("trunk", T + 2, "c") == (
        Finding("trunk", "3 inbound calls in 60s on trunk (max 2)", ("a", "b", "c")),
    )
    for i in range(200):
        kind.count(f"t{i}", T, "x")
    assert kind.state_size() == MAX_TRUNKS
    assert kind.expire(T + 61) == MAX_TRUNKS


def test_live_calls_never_hung_up_are_bounded() -> None:
    conc, spend = Concurrent({"max_calls": 10**6}), Spend({"daily_limit": 1.0})
    for i in range(MAX_LIVE_CALLS + 5):
        conc.started("1001", T + i, f"u{i}")
        spend.dialled("1001", f"u{i}", 1.0)
    assert conc.live_calls("1001") == MAX_LIVE_CALLS == conc.state_size()
    assert spend.state_size() == MAX_LIVE_CALLS
    conc.hung_up("1001", "u0")  # evicted already: nothing to do
    assert conc.live_calls("1001") == MAX_LIVE_CALLS
