"""Policy: profiles, escalation levels, allow-list, simulation, history export/import."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from sipguard.core.alerts import Action, Alert
from sipguard.policy import (
    AllowList,
    OffenceHistory,
    Policy,
    PolicyError,
    format_duration,
    parse_duration,
    profiles_from_dict,
)

T0 = 1_800_000_000.0
H, D, W = 3600.0, 86400.0, 604800.0


def alert(net: str | None = "203.0.113.5/32", profile: str = "default", t: float = T0) -> Alert:
    return Alert(
        rule="password-guessing",
        time=t,
        key=net or "account:1001",
        network=ip_network(net) if net else None,
        profile=profile,
        reason="6 wrong passwords in 5s",
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1h", 3600),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        (45, 45),
        ("2.5m", 150),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10x", "-5s", "m", True, None, "1" * 50, [1]])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration() -> None:
    assert [format_duration(x) for x in (600, 5400, 604800, None)] == [
        "10m",
        "1h30m",
        "1w",
        "permanent",
    ]


def test_escalation_steps_and_cap() -> None:
    pol = Policy()
    got = []
    t = T0
    for _ in range(6):
        d = pol.decide(alert(t=t), t)
        assert d is not None and d.action is Action.BAN
        got.append((d.level, d.duration))
        t += (d.duration or 0) + 1  # next offence after the ban ran out
    assert got == [(0, 600), (1, H), (2, D), (3, W), (4, W), (5, W)]
    assert "offence 7" in (pol.decide(alert(t=t), t) or alert()).reason


def test_running_ban_is_not_a_new_offence() -> None:
    pol = Policy()
    first = pol.decide(alert(), T0)
    second = pol.decide(alert(), T0 + 30)  # another rule fired on the same attack
    assert first is not None and second is not None
    assert second.level == 0 and second.expires == first.expires
    assert "already banned" in second.reason


def test_forget_after_resets_level() -> None:
    profiles = profiles_from_dict({"default": {"durations": ["10m", "1h"], "forget_after": "1d"}})
    pol = Policy(profiles)
    assert pol.decide(alert(), T0).duration == 600
    assert pol.decide(alert(t=T0 + 700), T0 + 700).duration == H
    late = T0 + 2 * D
    assert pol.decide(alert(t=late), late).duration == 600


def test_exponential_profile_capped() -> None:
    profiles = profiles_from_dict({"default": {"base": "5m", "factor": 3, "max": "1h"}})
    prof = profiles["default"]
    assert [prof.duration(n) for n in range(4)] == [300, 900, 2700, 3600]
    assert prof.duration(10_000) == 3600


def test_permanent_step() -> None:
    profiles = profiles_from_dict({"strict": {"durations": ["1d", "permanent"]}})
    assert profiles["strict"].duration(5) is None


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"x": {"action": "drop"}}, "profiles.x.action"),
        ({"x": {"durations": ["10q"]}}, "profiles.x.durations[0]"),
        ({"x": {"durations": []}}, "profiles.x.durations"),
        ({"x": {"base": "1m", "factor": 0}}, "profiles.x.factor"),
        ({"x": {"speed": 1}}, "profiles.x.speed"),
    ],
)
def test_bad_profile_names_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(PolicyError) as exc:
        profiles_from_dict(data)
    assert exc.value.key == key


def test_allowlist_never_bans() -> None:
    allow = AllowList.from_strings(["192.0.2.0/24", "2001:db8::/48"])
    assert allow.contains(ip_address("192.0.2.77")) and not allow.contains(ip_address("192.0.3.1"))
    pol = Policy(allowlist=allow)
    d = pol.decide(alert("192.0.2.9/32"), T0)
    assert d is not None and d.action is Action.ALLOWED
    d6 = pol.decide(alert("2001:db8:0:5::/64"), T0)
    assert d6 is not None and d6.action is Action.ALLOWED
    assert len(pol.history) == 0, "allowed sources are not offenders"
    with pytest.raises(PolicyError):
        AllowList.from_strings(["not-an-ip"])


def test_simulation_and_alert_profile_and_account_alerts() -> None:
    pol = Policy(simulate=True)
    d = pol.decide(alert(), T0)
    assert d is not None and d.action is Action.SIMULATE and d.duration == 600
    a = pol.decide(alert("198.51.100.1/32", profile="alert"), T0)
    assert a is not None and a.action is Action.ALERT and a.duration == 0
    assert pol.decide(alert(None, profile="alert"), T0) is None


def test_history_export_import_keeps_levels() -> None:
    pol = Policy()
    pol.decide(alert(), T0)
    pol.decide(alert(t=T0 + 700), T0 + 700)
    data = pol.history.export()
    assert data == {"203.0.113.5": [T0, T0 + 700]}
    restored = OffenceHistory.load({**data, "garbage": ["x"], "10.0.0.1": ["nan?"]})
    assert len(restored) == 1
    pol2 = Policy(history=restored)
    d = pol2.decide(alert(t=T0 + 5000), T0 + 5000)
    assert d is not None and d.level == 2 and d.duration == D


def test_unknown_profiles_are_reported_and_fall_back() -> None:
    pol = Policy()
    assert pol.unknown_profiles(["default", "alert", "strict", "long"]) == ["strict"]
    d = pol.decide(alert(profile="strict"), T0)
    assert d is not None and d.duration == 600  # falls back to "default"


def _with_evidence(net: str, *ips: str) -> Alert:
    from dataclasses import replace

    from sipguard.core.events import Event, Kind, Service

    events = tuple(
        Event(T0, Kind.WRONG_PASSWORD, Service.PJSIP, ip_address(ip), 5060) for ip in ips
    )
    return replace(alert(net), events=events)


def test_allow_listed_after_its_ban_is_never_banned_again() -> None:
    allow = AllowList()
    pol = Policy(allowlist=allow)
    first = pol.decide(alert("192.0.2.9/32"), T0)
    assert first is not None and first.action is Action.BAN
    allow.networks = (ip_network("192.0.2.0/24"),)  # the admin allows it while the ban runs
    again = pol.decide(alert("192.0.2.9/32"), T0 + 5)
    assert again is not None and again.action is Action.ALLOWED


def test_v6_group_overlapping_the_allow_list_narrows_to_the_attacker() -> None:
    # the PBX itself lives in the attacker's /64: ban the attacker's /128, never the /64
    pol = Policy(allowlist=AllowList.from_strings(["2001:db8:9::1/128"]))
    d = pol.decide(_with_evidence("2001:db8:9::/64", "2001:db8:9::66"), T0)
    assert d is not None and d.action is Action.BAN
    assert d.network == ip_network("2001:db8:9::66/128")
    # evidence only from the allowed address itself: allowed, nothing banned
    d2 = pol.decide(_with_evidence("2001:db8:9::/64", "2001:db8:9::1"), T0)
    assert d2 is not None and d2.action is Action.ALLOWED


def test_lock_is_a_profile_action_for_account_alerts_only() -> None:
    profiles = profiles_from_dict({"account-attack": {"action": "alert", "actions": ["lock"]}})
    policy = Policy(profiles)
    assert policy.lock(alert(None, "account-attack")) == "1001"
    assert policy.decide(alert(None, "account-attack"), T0) is None  # nothing to ban
    assert policy.lock(alert(None, "alert")) is None, "the shipped alert profile never locks"
    assert policy.lock(alert("203.0.113.5/32", "account-attack")) is None, "a source alert"
    assert Policy(profiles, simulate=True).lock(alert(None, "account-attack")) is None
