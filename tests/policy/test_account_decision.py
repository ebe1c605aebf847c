"""An account's alert (the fraud rules') -> AccountDecision: hang up, lock, notify, chosen by
the rule's profile, with the policy's simulation mode and allow-list applied."""

from __future__ import annotations

import asyncio
from ipaddress import ip_network
from typing import Any

from sipguard.actions.ami import AmiFraudActions
from sipguard.core.alerts import Action, Alert
from sipguard.policy.decide import AllowList, Policy

T = 1_763_780_000.0


def alert(actions: tuple[str, ...], network: str | None = None) -> Alert:
    return Alert(
        rule="risky_destination",
        time=T,
        key="account:1001",
        network=ip_network(network) if network else None,
        profile="default" if network else "alert",
        reason="call to +881612345678: satellite",
        account="1001",
        channels=("PJSIP/1001-0000001a",),
        actions=actions,
    )


def test_the_profile_actions_become_the_decision() -> None:
    d = Policy().account_decision(alert(("alert", "hangup", "lock")), T)
    assert d is not None and not d.simulated
    assert (d.account, d.actions, d.channels) == (
        "1001",
        ("alert", "hangup", "lock"),
        ("PJSIP/1001-0000001a",),
    )
    assert d.to_dict()["actions"] == ["alert", "hangup", "lock"]


def test_simulation_and_allow_list_report_only() -> None:
    assert Policy(simulate=True).account_decision(alert(("lock",)), T).simulated  # type: ignore[union-attr]
    allowed = Policy(allowlist=AllowList(["203.0.113.0/24"]))
    d = allowed.account_decision(alert(("alert", "ban", "lock"), "203.0.113.7/32"), T)
    assert d is not None and d.simulated and d.actions == ("alert", "lock")  # ban: decide()'s
    ban = allowed.decide(alert(("alert", "ban", "lock"), "203.0.113.7/32"), T)
    assert ban is not None and ban.action is Action.ALLOWED


def test_nothing_to_decide() -> None:
    assert Policy().account_decision(alert(("ban",)), T) is None
    plain = Alert("password-guessing", T, "192.0.2.1", ip_network("192.0.2.1/32"), "default", "x")
    assert Policy().account_decision(plain, T) is None
    assert "account" not in plain.to_dict()  # log alerts' JSON is unchanged


class FakeAmi:
    def __init__(self) -> None:
        self.sent: list[tuple[str, ...]] = []

    async def hangup(self, channel: str, cause: int | None = None) -> bool:
        self.sent.append(("hangup", channel))
        return True

    async def db_put(self, family: str, key: str, value: str) -> bool:
        self.sent.append(("dbput", family, key))
        return True

    async def action(self, name: str, **fields: Any) -> Any:
        return None


def test_ami_carries_out_hangup_and_lock_and_not_a_simulated_decision() -> None:
    ami = FakeAmi()
    actions = AmiFraudActions(ami)
    real = Policy().account_decision(alert(("alert", "hangup", "lock")), T)
    fake = Policy(simulate=True).account_decision(alert(("alert", "hangup", "lock")), T)
    assert real is not None and fake is not None
    asyncio.run(actions.carry_out(fake, ("u1",)))
    assert ami.sent == []
    asyncio.run(actions.carry_out(real, ("u1",)))
    assert ami.sent == [("hangup", "PJSIP/1001-0000001a"), ("dbput", "sipguard/locked", "1001")]
    assert [t.calls for t in actions.taken] == [("u1",), ("u1",)]
