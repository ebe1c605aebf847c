"""A profile with actions = ["lock"] on an account-keyed rule: the daemon's alert observer
queues the account, and the tick locks it through the AMI actions (actions/ami.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from ipaddress import ip_address

from sipguard.config.rules import load_rules
from sipguard.core.asterisk import LogNormalizer
from sipguard.core.events import Event, Kind, Service
from sipguard.daemon.processing import Processing
from sipguard.detect import Engine
from sipguard.pipeline import Pipeline
from sipguard.policy import Policy, profiles_from_dict

T0 = 1_800_000_000.0


def fail(ip: str, t: float) -> Event:
    return Event(t, Kind.WRONG_PASSWORD, Service.PJSIP, ip_address(ip), account="1001")


class Locker:
    def __init__(self) -> None:
        self.locked: list[tuple[str, str]] = []

    async def lock(self, account: str, rule: str, calls: tuple[str, ...] = ()) -> bool:
        self.locked.append((account, rule))
        return True


def processing(simulate: bool = False) -> Processing:
    rules = [
        replace(r, profile="lock") if r.id == "distributed-account-attack" else r
        for r in load_rules(only=["distributed-account-attack", "account-under-attack"])
    ]
    profiles = profiles_from_dict({"lock": {"action": "alert", "actions": ["lock"]}})
    policy = Policy(profiles, simulate=simulate)
    pipeline = Pipeline(LogNormalizer(default_year=2026), Engine(rules), policy)
    return Processing(pipeline, policy, None, None, 10)  # type: ignore[arg-type]


def test_the_alert_queues_the_account_and_the_tick_locks_it() -> None:
    proc = processing()
    proc.pipeline.direct(fail("198.51.100.1", T0), T0)
    assert not proc.locks
    assert proc.pipeline.direct(fail("198.51.100.2", T0 + 1), T0 + 1) == []
    assert list(proc.locks) == [("1001", "distributed-account-attack")]
    locker = Locker()
    asyncio.run(proc.lock_accounts(locker))
    assert locker.locked == [("1001", "distributed-account-attack")] and not proc.locks
    # and `explain 1001` knows the account is under attack
    view = proc.account("1001", T0 + 2)
    assert view["under_attack"]["sources"] == 2  # type: ignore[index]


def test_simulation_never_locks() -> None:
    proc = processing(simulate=True)
    proc.pipeline.direct(fail("198.51.100.1", T0), T0)
    proc.pipeline.direct(fail("198.51.100.2", T0 + 1), T0 + 1)
    assert not proc.locks
