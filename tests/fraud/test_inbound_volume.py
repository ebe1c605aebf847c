"""Inbound volume on a trunk (issue 12.7): a separate, low-severity signal. An office week of
inbound trunk calls raises no high alert; a burst over the threshold raises the low
inbound-volume signal; an account's outbound fraud over the trunk still alerts high."""

from __future__ import annotations

import pytest

from sipguard.core.calls import record_event
from sipguard.fraud.config import ConfigError, build_config
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.model import Hit
from sipguard.fraud.scan import build_engine

MONDAY_9 = 1_794_646_800.0  # 2026-11-16 09:00 Europe/Berlin


def office() -> LiveTracker:
    config = build_config({"home_country": "DE", "national_prefix": "0", "trunks": ["carrier"]})
    engine = build_engine(config)
    engine.load_baseline({})
    return LiveTracker(engine)


def call(tracker: LiveTracker, n: int, account: str, dst: str, start: float) -> list[Hit]:
    chan = f"PJSIP/{account}-{n:08x}"
    event = record_event(
        f"u{n}", account, dst, start, start + 70, 60, True, chan, "", n + 1, "Master.csv"
    )
    return tracker.on_event(event)


def week(tracker: LiveTracker, burst_day: int | None = None) -> list[Hit]:
    """Mon-Fri 09-17: an inbound call every 10 minutes, an outbound national call every
    20; on `burst_day` 09:00, 15 extra inbound calls within two minutes."""
    hits: list[Hit] = []
    n = 0
    for day in range(5):
        t0 = MONDAY_9 + day * 86400
        if day == burst_day:
            for i in range(15):
                n += 1
                hits += call(tracker, n, "carrier", "200", t0 + i * 8)
        for minute in range(0, 8 * 60, 10):
            n += 1
            hits += call(tracker, n, "carrier", "200", t0 + minute * 60 + 3)
            if minute % 20 == 0:
                n += 1
                hits += call(tracker, n, f"10{minute % 3}", "030123456", t0 + minute * 60 + 5)
    return hits


def test_office_week_of_inbound_calls_raises_nothing() -> None:
    assert week(office()) == []


def test_inbound_burst_is_a_low_signal_on_the_trunk_never_high() -> None:
    hits = week(office(), burst_day=2)
    assert hits, "15 inbound calls in two minutes cross max_calls 10 in 300 s"
    assert {h.rule for h in hits} == {"inbound_volume"}
    assert {h.account for h in hits} == {"carrier"}
    assert {h.severity for h in hits} == {"low"}
    assert all(h.actions == ("alert",) for h in hits), "alert only: no hang-up, no lock"
    assert "inbound calls in 300s on carrier (max 10)" in hits[0].reason


def test_outbound_fraud_over_the_trunk_still_alerts_high() -> None:
    tracker = office()
    hits = week(tracker, burst_day=2)
    fraud = call(tracker, 10_000, "1001", "09001234567", MONDAY_9 + 2 * 86400 + 600)
    assert {h.account for h in fraud} == {"1001"}
    assert {h.severity for h in fraud} & {"high", "critical"}
    assert not {h.severity for h in hits} & {"high", "critical"}


def test_inbound_volume_cannot_be_configured_high() -> None:
    with pytest.raises(ConfigError, match=r"inbound_volume\.severity"):
        build_config({"rules": {"inbound_volume": {"severity": "high"}}})


def ami_call(tracker: LiveTracker, n: int, channel: str, context: str, exten: str) -> list[Hit]:
    """A call that never dials out (an IVR answers it, or the dialplan refuses it), as AMI
    reports it: Newchannel, then Hangup."""
    fields = {
        "channel": channel.format(n=n),
        "context": context,
        "exten": exten,
        "uniqueid": f"1796591751.{n}",
        "linkedid": f"1796591751.{n}",
    }
    t = MONDAY_9 + n * 10

    def get(key: str) -> str | None:  # AMI field names are case-insensitive
        return fields.get(key.lower())

    return tracker.feed("Newchannel", get, t) + tracker.feed("Hangup", get, t + 8)


def test_live_calls_that_never_dial_out_count_too() -> None:
    """An inbound flood on an IVR has no DialBegin: counted at each call's hangup, on its trunk;
    an extension's call to a premium number the dialplan refused is still its own."""
    tracker = office()
    hits: list[Hit] = []
    for n in range(12):
        hits += ami_call(tracker, n, "PJSIP/provider-{n:08x}", "from-pstn", "0301234567")
    assert {(h.rule, h.account, h.severity) for h in hits} == {
        ("inbound_volume", "provider", "low")
    }
    refused = ami_call(tracker, 100, "PJSIP/1001-{n:08x}", "from-internal", "09001234567")
    assert ("risky_destination", "1001") in [(h.rule, h.account) for h in refused]
    assert {h.account for h in refused} == {"1001"}
    assert ami_call(tracker, 101, "PJSIP/1001-{n:08x}", "from-internal", "*97") == []
