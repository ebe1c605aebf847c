"""The one pipeline with real stages (LogNormalizer, Engine, Policy): replay time vs wall time,
the observers, the outside entry points and the counters `status` shows."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from sipguard.config.rules import load_rules
from sipguard.core import Action, Alert, Decision, Event
from sipguard.core.asterisk import LogNormalizer
from sipguard.core.events import Kind, Service
from sipguard.daemon.harness import pjsip_failure
from sipguard.detect import Engine
from sipguard.pipeline import Pipeline, Unjudged
from sipguard.policy import AllowList, Policy

RULE = [r for r in load_rules(None) if r.id == "password-guessing"]


def lines(ip: str, n: int) -> bytes:
    return "".join(pjsip_failure(ip, i) for i in range(n)).encode()


def make(decider=None, **kw) -> Pipeline:
    return Pipeline(LogNormalizer(), Engine(RULE), decider or Policy(), **kw)


def test_lines_to_one_ban_at_the_threshold_with_counters_and_recent():
    p = make()
    assert p.lines(lines("203.0.113.7", 4), "messages", 1, 1000.0) == []
    [d] = p.lines(pjsip_failure("203.0.113.7", 4).encode(), "messages", 5, 1001.0)
    assert d.action is Action.BAN and d.network == ip_network("203.0.113.7/32")
    assert d.start == 1001.0  # wall time handed in, not the log's
    assert p.counts["events"] == 5 and p.counts["alerts"] == 1
    assert p.counts["decisions_ban"] == 1 and p.counts["batches"] == 2
    assert [r["key"] for r in p.recent] == ["203.0.113.7"]


def test_replay_judges_each_event_at_its_own_time_and_observers_see_all():
    seen: list[Event] = []
    alerts: list[tuple[Alert, Decision | None]] = []
    p = make(Unjudged(), on_event=seen.append, on_alert=lambda a, d: alerts.append((a, d)))
    assert p.lines(lines("198.51.100.3", 5), "messages", 1, None) == []  # Unjudged: no decision
    assert len(seen) == 5 and p.latest == max(e.time for e in seen)
    [(alert, decision)] = alerts
    assert decision is None and alert.time == seen[-1].time
    assert p.counts["decisions_none"] == 1


def test_outside_alert_goes_through_the_policy_allow_list():
    p = make(Policy(allowlist=AllowList(["192.0.2.0/24"])))
    alert = Alert("fraud", 50.0, "192.0.2.9", ip_network("192.0.2.9/32"), "default", "fraud")
    [d] = p.alert(alert, None)
    assert d.action is Action.ALLOWED and d.start == 50.0
    assert p.counts["external_alerts"] == 1 and p.counts["decisions_allowed"] == 1


def test_direct_events_skip_the_normalizer_and_events_join_its_dedup():
    p = make()
    e = Event(10.0, Kind.WRONG_PASSWORD, Service.PJSIP, ip=ip_address("203.0.113.8"), call_id="x")
    p.direct(e, 10.0)
    assert p.normalizer.stats.events == 0 and p.counts["events"] == 1
    p.event(e, 10.0)
    assert p.counts["external_events"] == 1
    assert p.detector.state_size() >= 1 and p.tick(10_000.0) == []
    assert p.detector.state_size() == 0  # tick expires idle state
