"""AmiClient against the wire-protocol test server (sipguard.testing.ami_server), over loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from sipguard.core.ami import AmiError, AmiFramer, AmiMessage
from sipguard.sources.ami import AmiActionError, AmiAuthError, AmiClient
from sipguard.testing.ami_server import AmiServer, event_mask

USERS = {"sipguard": "s3cret"}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.01)


class Running:
    """Start client.run() in a task, collect events, stop it at the end."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.events: list[AmiMessage] = []
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.client.run(self.events.append))
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.task.cancel()
        done, _ = await asyncio.wait({self.task}, timeout=2)
        assert done, "the source ignored its cancellation"
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def client(server: AmiServer, **kw: Any) -> AmiClient:
    kw.setdefault("secret", "s3cret")
    kw.setdefault("backoff_min", 0.05)
    kw.setdefault("backoff_max", 0.2)
    return AmiClient("127.0.0.1", server.port, "sipguard", **kw)


@pytest.mark.parametrize("auth", ["md5", "plain"])
def test_login_and_security_event(auth: str) -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server, auth=auth)
            async with Running(c) as r:
                await asyncio.wait_for(c.connected.wait(), 5)
                login = await server.wait_for_action("Login")
                assert login.get("Events") == "security,system,call"
                if auth == "md5":
                    assert login.get("AuthType") == "MD5" and login.get("Secret") is None
                    assert len(login.get("Key") or "") == 32
                    assert (await server.wait_for_action("Challenge")).get("AuthType") == "MD5"
                else:
                    assert login.get("Secret") == "s3cret"
                assert c.version == "9.0.0"
                sent = await server.push_security(
                    "InvalidAccountID",
                    Service="PJSIP",
                    AccountID="100",
                    SessionID="abc",
                    LocalAddress="IPV4/UDP/127.0.0.1/5060",
                    RemoteAddress="IPV4/UDP/192.0.2.7/5061",
                )
                assert sent == 1
                await until(lambda: any(e.name == "InvalidAccountID" for e in r.events))
            ev = next(e for e in r.events if e.name == "InvalidAccountID")
            assert ev.get("Privilege") == "security,all"
            assert ev.get("RemoteAddress") == "IPV4/UDP/192.0.2.7/5061"
            assert [k for k, _ in ev.fields][:5] == [
                "Event",
                "Privilege",
                "EventTV",
                "Severity",
                "Service",
            ]
            # FullyBooted came first, because the system class was asked for
            assert r.events[0].name == "FullyBooted"
            assert server.logins == 1

    run(main())


def test_refused_login_error_text_and_slow_retry() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server, secret="wrong", backoff_max=0.3)
            async with Running(c):
                await until(lambda: server.failed_logins >= 2)
            assert isinstance(c.last_error, AmiAuthError)
            assert str(c.last_error) == (
                f"AMI login refused for user 'sipguard' at 127.0.0.1:{server.port}: "
                "Authentication failed"
            )
            assert not c.connected.is_set()

            strict = client(server, secret="wrong", auth="plain", raise_auth_errors=True)
            with pytest.raises(AmiAuthError, match="Authentication failed"):
                await strict.run(lambda m: None)

    run(main())


def test_events_mask_honoured() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server, events="security")
            async with Running(c) as r:
                await asyncio.wait_for(c.connected.wait(), 5)
                assert await server.push_event({"Event": "Newchannel"}, privilege="call") == 0
                await server.push_security("ChallengeSent", Challenge="")
                await until(lambda: len(r.events) == 1)
            assert r.events[0].name == "ChallengeSent"
            assert r.events[0].get("Challenge") == ""
            assert r.events[0].get("Severity") == "Informational"

    run(main())


def test_event_mask_parsing() -> None:
    assert event_mask("off") == frozenset()
    assert event_mask("on") == event_mask("all") == event_mask(None)
    assert event_mask("security,call") == {"security", "call"}
    assert event_mask("bogus") == frozenset()


def test_actions_correlated_by_action_id() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server)
            async with Running(c):
                await asyncio.wait_for(c.connected.wait(), 5)
                # many concurrent actions: each gets its own reply, not a neighbour's
                keys = [f"k{i}" for i in range(20)]
                oks = await asyncio.gather(*(c.db_put("sg", k, k.upper()) for k in keys))
                assert all(oks)
                vals = await asyncio.gather(*(c.db_get("sg", k) for k in keys))
                assert vals == [k.upper() for k in keys]
                assert await c.db_get("sg", "missing") is None
                assert await c.hangup("PJSIP/1001-00000001") is True
                server.set_reply("Hangup", [("Response", "Error"), ("Message", "No such channel")])
                assert await c.hangup("PJSIP/nope") is False
                resp = await c.action("Originate", Channel="PJSIP/1001", Exten="100")
                assert resp.get("Message") == "Originate successfully queued"
                bad = await c.action("NoSuchThing")
                assert bad.name == "Error" and "Invalid/unknown command" in (
                    bad.get("Message") or ""
                )
                assert await c.ping() < 1.0
                with pytest.raises(AmiError):
                    await c.hangup("PJSIP/x\r\nAction: Originate")
            hangups = [a for a in server.actions if a.get("Action") == "Hangup"]
            assert [a.get("Channel") for a in hangups] == ["PJSIP/1001-00000001", "PJSIP/nope"]
            assert len({a.action_id for a in server.actions}) == len(server.actions)

    run(main())


def test_reconnect_after_server_drops_connection() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server)
            async with Running(c) as r:
                await until(lambda: server.logins == 1)
                await server.drop_connections()
                await until(lambda: server.logins == 2)
                await asyncio.wait_for(c.connected.wait(), 5)
                await server.push_security("FailedACL", ACLName="not_match_endpoint_acl")
                await until(lambda: any(e.name == "FailedACL" for e in r.events))
                assert await c.db_put("a", "b", "c")
            assert c.stats["connects"] == 2
            assert isinstance(c.last_error, ConnectionError)

    run(main())


def test_keepalive_pings_and_detects_a_hung_server() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server, keepalive=0.1, action_timeout=0.3)
            async with Running(c):
                await until(lambda: sum(a.get("Action") == "Ping" for a in server.actions) >= 2)
                assert server.logins == 1  # answered pings keep the session
                server.answer_ping = False
                await until(lambda: server.logins == 2)  # unanswered ping -> reconnect
            assert "keepalive" in str(c.last_error)

    run(main())


def test_action_when_not_connected() -> None:
    async def main() -> None:
        c = AmiClient("127.0.0.1", 9, "u", "s", action_timeout=0.05)
        with pytest.raises(AmiActionError, match="not connected"):
            await c.ping()

    run(main())


def test_connection_refused_backs_off() -> None:
    async def main() -> None:
        server = await AmiServer(USERS).start()
        port = server.port
        await server.close()  # nothing listens on this port now
        c = AmiClient("127.0.0.1", port, "u", "s", backoff_min=0.01, backoff_max=0.04)
        async with Running(c):
            await until(lambda: c.stats["reconnects"] >= 4)
        assert isinstance(c.last_error, OSError)

    run(main())


def test_server_speaks_real_wire_format() -> None:
    """Raw bytes from the test server, as a non-sipguard client would see them."""

    async def main() -> None:
        async with AmiServer(USERS) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await reader.readline() == b"Asterisk Call Manager/9.0.0\r\n"
            writer.write(b"Action: Ping\r\nActionID: 1\r\n\r\n")
            assert await reader.readuntil(b"\r\n\r\n") == (
                b"Response: Error\r\nActionID: 1\r\nMessage: Permission denied\r\n\r\n"
            )
            writer.write(
                b"Action: Login\r\nUsername: sipguard\r\nSecret: s3cret\r\nEvents: off\r\n\r\n"
            )
            assert await reader.readuntil(b"\r\n\r\n") == (
                b"Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
            )
            writer.write(b"Action: Ping\r\nActionID: 2\r\n\r\n")
            pong = AmiFramer(expect_banner=False).feed(await reader.readuntil(b"\r\n\r\n"))[0]
            assert pong.fields[:3] == (("Response", "Success"), ("ActionID", "2"), ("Ping", "Pong"))
            writer.write(b"Action: Logoff\r\n\r\n")
            assert await reader.readuntil(b"\r\n\r\n") == (
                b"Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n"
            )
            assert await reader.read() == b""  # server closed the session
            writer.close()
            await writer.wait_closed()

    run(main())


def test_security_events_become_sipguard_events() -> None:
    pytest.importorskip("sipguard.core.asterisk")  # the normalizer engineer's module
    from datetime import UTC, datetime
    from ipaddress import ip_address

    from sipguard.core.events import Kind
    from sipguard.sources.ami import ami_security_events

    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(server)
            async with Running(c) as r:
                await asyncio.wait_for(c.connected.wait(), 5)
                await server.push_security(
                    "InvalidPassword",
                    EventTV="2026-11-22T01:39:08.118+0000",
                    Service="AMI",
                    AccountID="amiadmin",
                    SessionID="0x7f0f30013f30",
                    LocalAddress="IPV4/TCP/127.0.0.1/5038",
                    RemoteAddress="IPV4/TCP/198.51.100.9/47884",
                    Challenge="",
                    ReceivedChallenge="",
                    ReceivedHash="",
                )
                await server.push_security(
                    "ChallengeResponseFailed",
                    Service="PJSIP",
                    AccountID="1001",
                    SessionID="1951665900",
                    RemoteAddress="IPV6/UDP/2001:db8::1/5061",
                    Challenge="",
                    Response="x",
                    ExpectedResponse="",
                )
                await until(lambda: len(r.events) >= 3)
        events = [ami_security_events(m, now=123.0) for m in r.events]
        assert events[0] is None  # FullyBooted is not a security event
        ami, sip = events[1], events[2]
        assert ami is not None and sip is not None
        assert ami.kind is Kind.AMI_LOGIN_FAILED and ami.ip == ip_address("198.51.100.9")
        assert ami.port == 47884 and ami.account == "amiadmin"
        tv = datetime(2026, 11, 22, 1, 39, 8, 118000, tzinfo=UTC).timestamp()
        assert ami.time == pytest.approx(tv)  # from EventTV, not `now`
        assert ami.origin.source == "ami" and "InvalidPassword" in ami.origin.text
        assert sip.kind is Kind.WRONG_PASSWORD and sip.ip == ip_address("2001:db8::1")
        assert sip.transport == "udp" and sip.call_id == "1951665900"

    run(main())


def test_pending_action_fails_fast_when_connection_drops() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            server.set_reply("Hangup", lambda m: [])  # never answered
            c = client(server, action_timeout=10)
            async with Running(c):
                await asyncio.wait_for(c.connected.wait(), 5)
                pending = asyncio.create_task(c.hangup("PJSIP/1"))
                await server.wait_for_action("Hangup")
                t0 = asyncio.get_running_loop().time()
                await server.drop_connections()
                with pytest.raises(AmiActionError, match="lost"):
                    await pending
                assert asyncio.get_running_loop().time() - t0 < 1.0

    run(main())


def test_filter_action_limits_events() -> None:
    async def main() -> None:
        async with AmiServer(USERS) as server:
            c = client(
                server,
                events="security",
                filters=["Event: (InvalidAccountID|FailedACL)", "!AccountID: trunk", "(bad"],
            )
            async with Running(c) as r:
                await asyncio.wait_for(c.connected.wait(), 5)
                await server.push_security("ChallengeSent", AccountID="1001")
                await server.push_security("FailedACL", AccountID="trunk")
                await server.push_security("InvalidAccountID", AccountID="100")
                await until(lambda: len(r.events) >= 1)
                await asyncio.sleep(0.05)
            assert [(e.name, e.get("AccountID")) for e in r.events] == [("InvalidAccountID", "100")]
            filters = [a for a in server.actions if a.get("Action") == "Filter"]
            assert [f.get("Filter") for f in filters][:2] == [
                "Event: (InvalidAccountID|FailedACL)",
                "!AccountID: trunk",
            ]
            # the refused "(bad" filter was logged, not fatal: one session throughout
            assert server.logins == 1 and c.stats["connects"] == 1

    run(main())
