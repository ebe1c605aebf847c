"""The fraud stage and the daemon's fraud component without a process: call events and CDR
lines in, core Alerts out; the component carries them out through the policy, keeps its
baseline across a reload, counts a stage failure instead of stopping."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sipguard.config.settings import AmiSettings, Settings, SourcesSettings
from sipguard.core.alerts import Alert
from sipguard.core.ami import AmiMessage
from sipguard.daemon.fraud import FraudComponent
from sipguard.fraud.config import build_config
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.scan import build_engine
from sipguard.fraud.stage import FraudStage
from sipguard.policy import Policy
from sipguard.sources import LineBatch
from sipguard.store import BaselineStore, Store

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALWAYS = {"days": DAYS, "start": "00:00", "end": "24:00"}  # the wall clock cannot matter
ROW = (
    '"","{acct}","09001234567","from-internal","""D"" <{acct}>","PJSIP/{acct}-00000001",'
    '"PJSIP/trunk-00000002","Dial","PJSIP/09001234567@trunk","2026-11-11 10:00:{s:02d}",'
    '"2026-11-11 10:00:05","2026-11-11 10:01:05",65,60,"ANSWERED","DOCUMENTATION",'
    '"{uid}",""\n'
)
T = 1_763_780_000.0


def engine(**rules: Any) -> FraudEngine:
    config = build_config(
        {
            "home_country": "DE",
            "national_prefix": "0",
            "international_prefixes": ["00"],
            "rules": {"after_hours": ALWAYS, **rules},
        }
    )
    e = build_engine(config)
    e.load_baseline({})
    return e


def rows(*calls: tuple[str, str, int]) -> bytes:
    return "".join(ROW.format(acct=a, uid=u, s=s) for a, u, s in calls).encode()


def test_cdr_lines_become_core_alerts_grouped_into_incidents() -> None:
    stage = FraudStage(engine())
    first = stage.cdr(rows(("1004", "u.1", 0)), "Master.csv", 1)
    assert [(f.alert.rule, f.alert.key, f.detector, f.calls, f.opens) for f in first] == [
        ("fraud.risky_destination", "account:1004", "risky_destination", ("u.1",), True)
    ]
    assert isinstance(first[0].alert, Alert) and first[0].alert.account == "1004"
    # the same rule on the same account again: the same incident, not a new notification
    again = stage.cdr(rows(("1004", "u.2", 1)), "Master.csv", 2)
    assert [f.opens for f in again] == [False]
    assert stage.hits_by_rule == {"risky_destination": 2}
    # garbage lines are counted by the parser, never raised
    assert stage.cdr(b"\x00\xff,,\n" * 20 + b'"' * 5000 + b"\n", "Master.csv", 3) == []


class FakeAmi:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def hangup(self, channel: str, cause: int | None = None) -> bool:
        self.sent.append(("hangup", channel))
        return True

    async def db_put(self, family: str, key: str, value: str) -> bool:
        self.sent.append(("db_put", key))
        return True

    async def action(self, name: str, **fields: str) -> object:
        raise AssertionError("not used")


def component(
    tmp: Path, ami: FakeAmi, simulate: bool = False, policy: Policy | None = None
) -> tuple[FraudComponent, list[Alert], list[dict[str, str | float]]]:
    bans: list[Alert] = []
    recent: list[dict[str, str | float]] = []

    async def ban(alert: Alert) -> None:
        bans.append(alert)

    settings = Settings(sources=SourcesSettings(ami=AmiSettings(enabled=True)))
    settings = Settings(
        sources=settings.sources,
        daemon=type(settings.daemon)(state_dir=str(tmp)),
    )
    baseline = BaselineStore(Store.open(tmp / "sipguard.db"))
    fraud = FraudComponent(
        settings, engine(), policy or Policy(), ban, recent.append, ami, simulate, baseline
    )
    return fraud, bans, recent


def dial(fraud: FraudComponent, account: str, uid: str, exten: str) -> None:
    chan = f"PJSIP/{account}-0000000{uid[-1]}"
    for name, fields in (
        ("Newchannel", {"Channel": chan, "Uniqueid": uid, "Exten": exten}),
        (
            "DialBegin",
            {"Channel": chan, "Uniqueid": uid, "Exten": exten, "DialString": f"trunk/{exten}"},
        ),
    ):
        msg = AmiMessage([("Event", name), *fields.items()])
        fraud.ami_event(msg, T)


def test_component_hangs_up_locks_and_notifies_through_the_policy(tmp_path: Path) -> None:
    async def main() -> None:
        ami = FakeAmi()
        fraud, bans, recent = component(tmp_path, ami)
        dial(fraud, "1001", "c.1", "00881612345678")  # satellite
        await fraud.drain()
        assert ("hangup", "PJSIP/1001-00000001") in ami.sent and ("db_put", "1001") in ami.sent
        assert bans == []  # no address: nothing to ban
        # one incident per rule: the satellite call, and the account's first foreign country
        rules = [r["rule"] for r in recent]
        assert rules == ["fraud.risky_destination", "fraud.new_country"]
        assert all(str(r["reason"]).endswith("calls c.1") for r in recent)
        st = fraud.status()
        assert st["hits"] == {"risky_destination": 1, "new_country": 1}
        assert st["locked"] == ["1001"] and st["actions"] == {"hangup_ok": 1, "lock_ok": 1}
        # simulation: the same decision is reported, nothing is sent
        quiet = FakeAmi()
        sim, _, _ = component(tmp_path, quiet, policy=Policy(simulate=True))
        dial(sim, "1002", "c.2", "00881612345678")
        await sim.drain()
        assert quiet.sent == []

    asyncio.run(main())


def test_reload_keeps_the_baseline_and_a_failing_stage_is_counted(tmp_path: Path) -> None:
    async def main() -> None:
        fraud, _, _ = component(tmp_path, FakeAmi())
        fraud.stage.engine.load_baseline({"1001": ["GB"]})
        settings = Settings(sources=SourcesSettings(ami=AmiSettings(enabled=True)))
        new = engine()
        new.learn_until = None  # a fresh engine would learn again
        fraud.reconfigure(settings, new, False)
        assert fraud.stage.engine is new and new.baseline() == {"1001": ["GB"]}
        assert await fraud.save()
        saved = BaselineStore(Store.open(tmp_path / "sipguard.db")).load()
        assert saved is not None and saved["accounts"] == {"1001": ["GB"]}

        def broken(*_: object) -> list[Any]:
            raise RuntimeError("tracker bug")

        fraud.stage.cdr = broken  # type: ignore[method-assign]
        fraud.cdr_lines(LineBatch("Master.csv", rows(("1004", "u.9", 0)), 1))
        assert fraud.counts["errors"] == 1

    asyncio.run(main())
