"""The dashboard's pure parts: scrypt hashes, sessions, the login limiter, the live counters."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from sipguard.core import Action, Alert, Decision, Event, Kind, Service
from sipguard.web import BanSummary
from sipguard.web.auth import LoginLimiter, Sessions, check_hash, hash_password, verify_password
from sipguard.web.live import MAX_ATTACKERS, LiveStats


def test_scrypt_hashes_verify_and_bad_ones_are_named() -> None:
    h = hash_password("a long password")
    check_hash(h)
    assert verify_password("a long password", h)
    assert not verify_password("a long passwore", h)
    assert not verify_password("x" * 5000, h)  # refused before the KDF
    assert hash_password("a long password") != h  # salted
    for bad in ("", "scrypt$1$8$1$aaaa$bbbb", "scrypt$16384$8$1$!!$bbbb", "bcrypt$x"):
        with pytest.raises(ValueError):
            check_hash(bad)


def test_sessions_expire_and_stay_bounded() -> None:
    s = Sessions(lifetime=60, limit=3)
    sid, session = s.create("admin", now=0)
    assert s.get(sid, 59) is session and len(session.csrf) > 30
    assert s.get(sid, 60) is None and s.get(sid, 1) is None  # gone once expired
    ids = [s.create("admin", 0)[0] for _ in range(5)]
    assert len(s) == 3 and s.get(ids[0], 1) is None and s.get(ids[-1], 1) is not None
    assert s.get("x" * 500, 1) is None


def test_the_limiter_refuses_after_the_attempts_until_the_window_passes() -> None:
    lim = LoginLimiter(attempts=3, window=60, sources=2)
    for t in range(3):
        assert lim.allowed("a", t)
        lim.failed("a", t)
    assert not lim.allowed("a", 10) and lim.refused == 1
    assert lim.allowed("a", 61)  # the first failure left the window
    lim.failed("b", 0)
    lim.failed("c", 0)  # beyond 2 sources: the least recent ("a") is forgotten
    assert lim.allowed("a", 11)


def ev(t: float, ip: str, account: str, kind: Kind = Kind.WRONG_PASSWORD) -> Event:
    return Event(time=t, kind=kind, service=Service.PJSIP, ip=ip_address(ip), account=account)


def test_live_counts_per_minute_and_a_distributed_attack_stands_out() -> None:
    live = LiveStats()
    t0 = 1_800_000_000.0
    for i in range(4):
        live.on_event(ev(t0 + i, f"192.0.2.{i}", "1001"))  # one account, four sources
    for i in range(10):
        live.on_event(ev(t0 + 61 + i, "198.51.100.7", "2002"))
    live.on_event(ev(t0 + 62, "198.51.100.7", "2002", Kind.AUTH_SUCCESS))  # context only
    net = ip_address("198.51.100.7")
    ban = Decision(
        network=ip_network(net),
        action=Action.BAN,
        rule="password-guessing",
        reason="r",
        start=t0 + 70,
        expires=t0 + 670,
    )
    alert = Alert("password-guessing", t0 + 70, "198.51.100.7", ban.network, "default", "r")
    live.on_alert(alert, ban)
    snap = live.snapshot(t0 + 80, minutes=3)
    assert snap["events_by_kind"]["wrong_password"][-2:] == [4, 10]
    assert snap["events_by_kind"]["auth_success"][-1] == 1
    assert snap["bans_per_minute"][-1] == 1
    accounts = snap["accounts"]
    assert [a["account"] for a in accounts] == ["1001", "2002"]  # distributed first
    assert accounts[0]["distributed"] and accounts[0]["sources"] == 4
    assert not accounts[1]["distributed"] and accounts[1]["events"] == 10
    top = live.top_sources(t0 + 80, 1)
    assert top[0]["source"] == "198.51.100.7" and top[0]["events"] == 10
    # an hour later nothing is current
    assert live.snapshot(t0 + 4000)["accounts"] == [] and live.attackers(t0 + 4000) == []


def test_live_memory_is_bounded_by_a_flood_of_sources() -> None:
    live = LiveStats()
    for i in range(MAX_ATTACKERS + 500):
        live.on_event(ev(1_800_000_000.0, f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "x"))
    assert len(live.sources) == MAX_ATTACKERS
    assert len(live.accounts["x"].sources) <= 500


def test_the_ban_summary_counts_every_ban_and_makes_rows_for_the_recent_ones_only() -> None:
    viewed: list[str] = []

    def view(d: Decision, now: float) -> dict[str, object]:
        viewed.append(str(d.network))
        return {"network": str(d.network), "start": d.start}

    def ban(net: str, start: float, origin: str = "local") -> Decision:
        return Decision(ip_network(net), Action.BAN, "r", "x", start, None, origin=origin)

    bans = [ban(f"10.0.{i // 250}.{i % 250}", 1000.0 + i % 7) for i in range(1000)]
    bans += [ban("192.0.2.0/24", 1006.0, "manual"), ban("198.51.100.1", 5.0, "fleet:b")]
    summary = BanSummary(view)
    got = summary(bans, 2000.0, top=4)
    assert got["active"] == 1002
    assert got["by_origin"] == {"fleet:b": 1, "local": 1000, "manual": 1}
    assert got["countries"] == {"??": 1002}  # private and documentation ranges: no country
    # the most recent first; equal times in the order given (what sorting every row gave)
    assert [r["start"] for r in got["recent"]] == [1006.0] * 4
    expected = [str(b.network) for b in bans if b.start == 1006.0][:4]
    assert [r["network"] for r in got["recent"]] == expected == viewed
    # each ban's country is looked up once while it is active, and forgotten when it ends
    assert len(summary._country) == 1002
    summary(bans[:1], 2001.0)
    assert len(summary._country) <= 1002
    summary([], 2002.0)
    assert len(summary._country) == 0
