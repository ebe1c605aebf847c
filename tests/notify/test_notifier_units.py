"""The notifier with a fake sender and clock: digest, routing by kind and severity, the
bounded queue, retries with backoff; the [notify] parser; the health checks."""

from __future__ import annotations

import asyncio
import time
from ipaddress import ip_network

import pytest

from sipguard.core import Action, Alert, Decision
from sipguard.notify import HealthWatch, Message, Notifier, NotifyConfig, Route, parse_notify


def ban(i: int, rule: str = "password-guessing") -> Decision:
    net = ip_network(f"100.64.{i // 250}.{i % 250 + 1}/32")
    return Decision(net, Action.BAN, rule, "test", 0.0, 600.0)


class Recorder:
    def __init__(self, fail: int = 0, delay: float = 0.0) -> None:
        self.sent: list[tuple[Route, Message]] = []
        self.calls = 0
        self.fail, self.delay = fail, delay

    async def __call__(self, route: Route, message: Message) -> bool:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.calls <= self.fail:
            return False
        self.sent.append((route, message))
        return True


async def drive(notifier: Notifier, seconds: float) -> None:
    task = asyncio.ensure_future(notifier.run())
    await asyncio.sleep(seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_burst_of_bans_is_one_digest_per_interval():
    async def go() -> Recorder:
        send = Recorder()
        n = Notifier(NotifyConfig((Route(("json://x",)),), digest_interval=0.3), send)
        task = asyncio.ensure_future(n.run())
        for i in range(1000):
            n.banned([ban(i)])
        await asyncio.sleep(0.1)
        assert send.sent == []  # the digest waits for the interval: the burst goes in one
        await asyncio.sleep(0.4)
        n.banned([ban(5000, "request-flood")])
        await asyncio.sleep(0.5)
        task.cancel()
        return send

    send = asyncio.run(go())
    assert [m.title for _, m in send.sent] == [
        "sipguard: 1000 addresses banned",
        "sipguard: 1 address banned",
    ]
    first = send.sent[0][1].body
    assert "password-guessing 1000" in first and "and 980 more" in first


def test_routes_by_kind_and_severity():
    mail = Route(("mailto://a",), frozenset({"attack", "fraud"}), "high")
    chat = Route(("json://b",), frozenset({"ban", "attack"}), "low")
    send = Recorder()
    n = Notifier(NotifyConfig((mail, chat), digest_interval=0.05), send)
    account = Alert(
        "distributed-account-attack", 0.0, "account:1001", None, "default", "x", severity="medium"
    )
    n.alert(account, None)  # medium: chat only
    n.fraud("spend", "1001", "critical", "over budget", ["c1"])  # mail only
    n.alert(Alert("password-guessing", 0.0, "1.2.3.4", None, "default", "x"), None)  # not sent
    n.banned([ban(1)])
    asyncio.run(drive(n, 0.3))
    got = sorted((r.urls[0], m.kind) for r, m in send.sent)
    assert got == [("json://b", "attack"), ("json://b", "ban"), ("mailto://a", "fraud")]


def test_a_full_queue_drops_and_counts_without_blocking():
    async def go() -> Notifier:
        n = Notifier(NotifyConfig((Route(("json://x",)),), queue_size=3), Recorder(delay=10))
        t0 = time.perf_counter()
        for i in range(100):
            n.fleet_disconnected(f"peer{i}", "timeout")
        assert time.perf_counter() - t0 < 0.05  # producers never wait
        return n

    n = asyncio.run(go())
    assert n.counts["queued"] == 3 and n.counts["dropped"] == 97


def test_failures_are_retried_with_backoff_then_counted():
    send = Recorder(fail=2)
    cfg = NotifyConfig((Route(("json://x",)),), retries=3, backoff=0.05)
    n = Notifier(cfg, send)
    n.fleet_disconnected("peer", "gone")
    asyncio.run(drive(n, 0.4))  # fails twice (0.05 + 0.1 s backoff), then sent
    assert n.counts["retried"] == 2 and n.counts["sent"] == 1 and n.counts["failed"] == 0

    always = Recorder(fail=100)
    n = Notifier(NotifyConfig((Route(("json://x",)),), retries=2, backoff=0.01), always)
    n.fleet_disconnected("peer", "gone")
    asyncio.run(drive(n, 0.3))
    assert always.calls == 3 and n.counts["failed"] == 1 and n.counts["sent"] == 0


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"digest": 5}, "notify.digest: unknown key"),
        ({"digest_interval": "1m"}, "notify.digest_interval: expected a non-negative number"),
        ({"route": {"urls": ["x"]}}, "notify.route: expected an array of tables"),
        ({"route": [{"urls": []}]}, "notify.route[0].urls: expected a non-empty list"),
        ({"route": [{"urls": ["x"], "kinds": ["bans"]}]}, "notify.route[0].kinds: expected"),
        ({"route": [{"urls": ["x"], "min_severity": "loud"}]}, "notify.route[0].min_severity"),
        ({"route": [{"urls": ["x"], "to": "y"}]}, "notify.route[0].to: unknown key"),
    ],
)
def test_bad_notify_tables_name_the_key(raw, error):
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
        parse_notify(raw)


def test_health_watch_reports_each_condition_once():
    h = HealthWatch(log_silence=60)
    assert h.check(0, {"/l": 10}, True, True, 0) == []
    assert h.check(59, {"/l": 10}, True, True, 0) == []
    silent = h.check(61, {"/l": 10}, True, True, 0)
    assert [m.kind for m in silent] == ["source"] and "/l stopped growing" in silent[0].title
    assert h.check(120, {"/l": 10}, True, True, 0) == []  # once, not every check
    assert h.check(130, {"/l": 20}, True, True, 0) == []  # grows again: re-armed
    assert h.check(500, {"/l": 20}, False, True, 0) == []  # Asterisk not running: quiet logs ok
    ami = h.check(501, {}, False, False, 0)
    assert [m.title for m in ami] == ["sipguard: AMI disconnected"]
    assert h.check(502, {}, False, False, 0) == []
    kernel = h.check(503, {}, False, True, 2)
    assert [(m.kind, m.severity) for m in kernel] == [("kernel", "critical")]
    assert h.check(504, {}, False, True, 2) == []


def test_health_watch_reports_a_fleet_that_lost_redis_once():
    h = HealthWatch(log_silence=60)
    assert h.check(0, {}, True, None, 0, fleet=(False, "")) == []  # not yet up: no news
    assert h.check(1, {}, True, None, 0, fleet=(True, "")) == []
    lost = h.check(2, {}, True, None, 0, fleet=(False, "Connection refused"))
    assert [(m.kind, m.severity, m.title) for m in lost] == [
        ("fleet", "high", "sipguard: fleet disconnected")
    ]
    assert "Connection refused" in lost[0].body and "outbox" in lost[0].body
    assert h.check(3, {}, True, None, 0, fleet=(False, "Connection refused")) == []  # once
    assert h.check(4, {}, True, None, 0, fleet=(True, "")) == []  # back: re-armed
    assert len(h.check(5, {}, True, None, 0, fleet=(False, ""))) == 1
    assert h.check(6, {}, True, None, 0) == []  # no fleet at all


def test_notify_urls_are_masked_when_settings_are_shown(tmp_path):
    from sipguard.config.settings import load_settings

    cfg = tmp_path / "sipguard.toml"
    cfg.write_text('[[notify.route]]\nurls = ["mailtos://me:s3cret@example.org"]\n')
    settings = load_settings(cfg)
    assert settings.notify["route"][0]["urls"] == ["mailtos://me:s3cret@example.org"]
    shown = settings.to_dict()
    assert shown["notify"]["route"][0]["urls"] == ["********"]
    assert "s3cret" not in repr(shown)
    assert settings.notify["route"][0]["urls"][0].endswith("@example.org")  # not changed
