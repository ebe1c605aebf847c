"""The live path against the test AMI server (real wire protocol): hang up within 1 s of the
dial, lock the account in AstDB, turn a call from a forbidden country into a ban alert.

The daemon's fraud component (`daemon/fraud.py`) is driven here the way the daemon's AMI and
CDR sources drive it: every AMI event to `ami_event`, followed CDR lines to `cdr_lines`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.actions.ami import LOCK_FAMILY
from sipguard.config.settings import AmiSettings, Settings, SourcesSettings
from sipguard.core.alerts import Alert
from sipguard.core.ami import AmiMessage
from sipguard.daemon.fraud import FraudComponent
from sipguard.fraud.config import build_config
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.scan import build_engine
from sipguard.fraud.tables import RateTable
from sipguard.policy import Policy
from sipguard.sources import FileFollower, LineBatch, MemoryCheckpointStore
from sipguard.sources.ami import AmiClient
from sipguard.testing.ami_calls import dial, registered
from sipguard.testing.ami_server import AmiServer

USERS = {"sipguard": "s3cret"}
CN_IP = "14.21.198.22"  # iptocc: CN


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))


def setup(client: AmiClient | None = None, **rules: Any) -> tuple[FraudComponent, list[Alert]]:
    # business hours all week, so the wall clock the test runs at cannot matter
    always = {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": "00:00",
        "end": "24:00",
    }
    config = build_config(
        {
            "home_country": "DE",
            "national_prefix": "0",
            "international_prefixes": ["00"],
            "rules": {"after_hours": always, **rules},
        }
    )
    rates = RateTable()
    rates.add("49", 0.01)
    engine = build_engine(config, rates)
    engine.load_baseline({})  # no learning period: a live daemon keeps its baseline
    alerts: list[Alert] = []

    async def ban(alert: Alert) -> None:
        alerts.append(alert)

    settings = Settings(sources=SourcesSettings(ami=AmiSettings(enabled=True)))
    fraud = FraudComponent(settings, engine, Policy(), ban, lambda _: None, client, False)
    return fraud, alerts


def watch(fraud: FraudComponent, client: AmiClient) -> asyncio.Task[None]:
    """The AMI source's loop: each event to the component, with the wall clock."""

    def on_event(msg: AmiMessage) -> None:
        fraud.ami_event(msg, time.time())

    return asyncio.create_task(client.run(on_event))


def test_premium_call_hung_up_within_a_second_and_account_locked() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            client = AmiClient("127.0.0.1", server.port, "sipguard", "s3cret")
            watcher, _ = setup(client)
            assert watcher.actions is not None
            task = watch(watcher, client)
            await asyncio.wait_for(client.connected.wait(), 5)
            # a normal national call first: no action
            await dial(server, "1001", 1, "03012345678")
            t0 = time.monotonic()
            channel, uid = await dial(server, "1001", 3, "00881612345678")  # satellite
            hangup = await server.wait_for_action("Hangup", timeout=5)
            elapsed = time.monotonic() - t0
            assert elapsed < 1.0, f"hangup sent {elapsed:.3f}s after DialBegin"
            assert hangup.get("Channel") == channel
            await server.wait_for_action("DBPut", timeout=5)
            assert server.db[(LOCK_FAMILY, "1001")].startswith("risky_destination")
            hangups = [a for a in server.actions if a.get("Action") == "Hangup"]
            assert [a.get("Channel") for a in hangups] == [channel]  # not the normal call
            await watcher.drain()
            taken = {(t.action, t.target, t.rule) for t in watcher.actions.taken}
            assert ("hangup", channel, "risky_destination") in taken
            assert ("lock", "1001", "risky_destination") in taken
            assert all(t.ok for t in watcher.actions.taken)
            assert uid in next(t for t in watcher.actions.taken if t.action == "hangup").calls
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run(main())


def test_third_concurrent_call_is_hung_up_and_hangups_end_calls() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            client = AmiClient("127.0.0.1", server.port, "sipguard", "s3cret")
            watcher, _ = setup(client)
            assert watcher.actions is not None
            task = watch(watcher, client)
            await asyncio.wait_for(client.connected.wait(), 5)
            await dial(server, "1002", 10, "03012345601")
            _, uid2 = await dial(server, "1002", 12, "03012345602")
            # the second call ends: the next one is only the second at once
            await server.push_event(
                [
                    ("Event", "Hangup"),
                    ("Channel", "PJSIP/1002-0000000c"),
                    ("Uniqueid", uid2),
                    ("Cause", "16"),
                ],
                "call",
            )
            await dial(server, "1002", 14, "03012345603")
            await asyncio.sleep(0.3)
            assert not [a for a in server.actions if a.get("Action") == "Hangup"]
            third, _ = await dial(server, "1002", 16, "03012345604")
            hangup = await server.wait_for_action("Hangup", timeout=5)
            assert hangup.get("Channel") == third
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run(main())


def test_registration_from_forbidden_country_becomes_ban_alert() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            client = AmiClient("127.0.0.1", server.port, "sipguard", "s3cret")
            watcher, alerts = setup(client, address_country={"allowed": ["DE"]})
            task = watch(watcher, client)
            await asyncio.wait_for(client.connected.wait(), 5)
            await registered(server, "1003", CN_IP, "abc")
            await server.wait_for_action("DBPut", timeout=5)
            await watcher.drain()
            assert len(alerts) == 1
            alert = alerts[0]
            assert alert.rule == "fraud.address_country" and alert.key == "account:1003"
            assert str(alert.network) == f"{CN_IP}/32"
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    run(main())


def test_followed_cdr_file_raises_alert_on_appended_row(tmp_path: Any) -> None:
    async def main() -> None:
        watcher, _ = setup()
        path = tmp_path / "Master.csv"
        path.write_text("")
        follower = FileFollower([str(path)], MemoryCheckpointStore())

        async def lines(batch: LineBatch) -> None:
            watcher.cdr_lines(batch)

        task = asyncio.create_task(follower.run(lines))
        await asyncio.sleep(0.3)
        row = (
            '"","1004","09001234567","from-internal","""D"" <1004>","PJSIP/1004-00000001",'
            '"PJSIP/trunk-00000002","Dial","PJSIP/09001234567@trunk","2026-11-11 10:00:00",'
            '"2026-11-11 10:00:05","2026-11-11 10:01:05",65,60,"ANSWERED","DOCUMENTATION",'
            '"1762855200.1",""\n'
        )
        with path.open("a") as f:
            f.write(row)
        for _ in range(100):
            if watcher.stage.hits:
                break
            await asyncio.sleep(0.05)
        hits = watcher.stage.hits
        assert {(h.rule, h.account) for h in hits} >= {("risky_destination", "1004")}
        assert hits[0].calls == ("1762855200.1",)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(main())


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "Newchannel",
                    "DialBegin",
                    "DialEnd",
                    "BridgeEnter",
                    "Hangup",
                    "Cdr",
                    "SuccessfulAuth",
                    "ContactStatus",
                    "PeerStatus",
                    "Other",
                ]
            ),
            st.dictionaries(
                st.sampled_from(
                    [
                        "Uniqueid",
                        "UniqueID",
                        "Channel",
                        "Exten",
                        "DialString",
                        "Duration",
                        "BillableSeconds",
                        "AccountID",
                        "RemoteAddress",
                        "URI",
                        "Address",
                        "Peer",
                        "PeerStatus",
                        "ContactStatus",
                        "Timestamp",
                        "DialStatus",
                        "Destination",
                        "AOR",
                    ]
                ),
                st.text(max_size=40),
            ),
        ),
        max_size=30,
    )
)
def test_tracker_survives_garbage_events(events: list[tuple[str, dict[str, str]]]) -> None:
    watcher = GARBAGE_WATCHER  # one engine for all examples: state piles up, as it would live
    tracker = LiveTracker(watcher.stage.engine)
    for name, fields in events:
        hits = tracker.feed(name, fields.get, 1_763_780_000.0)
        assert all(h.rule in watcher.stage.engine.config.rules for h in hits)
    assert tracker.counters["events"] == len(events)


GARBAGE_WATCHER = setup()[0]


def test_cel_and_cdr_events_drive_the_same_rules() -> None:
    watcher, _ = setup()
    tracker, t = watcher.stage.tracker, 1_763_780_000.0

    def cel(kind: str, **extra: str) -> list[Any]:
        fields = {"EventName": kind, "Channel": "PJSIP/1005-00000009", "UniqueID": "cel.1",
                  "Exten": "09001234567", "CallerIDnum": "1005", **extra}  # fmt: skip
        low = {k.lower(): v for k, v in fields.items()}  # AMI field names are case-insensitive
        return tracker.feed("CEL", lambda k: low.get(k.lower()), t)

    assert cel("CHAN_START") == []
    hits = cel("APP_START", Application="Dial", AppData="PJSIP/09001234567@trunk,60")
    assert {h.rule for h in hits} == {"risky_destination"}
    assert hits[0].channels == ("PJSIP/1005-00000009",)
    cel("ANSWER")
    cel("HANGUP")
    assert "cel.1" not in tracker.channels and not watcher.stage.engine.accounts["1005"].active
    # a CDR event for a call the tracker never saw is checked as a CDR row; a seen one is not
    cdr = {"UniqueID": "cdr.9", "Channel": "PJSIP/1006-0000000a", "Destination": "00881612345678",
           "Duration": "70", "BillableSeconds": "60", "Disposition": "ANSWERED"}  # fmt: skip
    assert {h.rule for h in tracker.feed("Cdr", cdr.get, t)} >= {"risky_destination"}
    cdr["UniqueID"] = "cel.1"
    assert tracker.feed("Cdr", cdr.get, t) == []
