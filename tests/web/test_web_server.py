"""The dashboard's server against a real aiohttp client on loopback, with a recording command
handler in place of the daemon: sessions, login, CSRF, origin checks, actions and who did them,
the live stream, and that failed logins become events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from ipaddress import ip_network
from typing import Any

import aiohttp
import pytest

from sipguard.core import Action, Decision, Event, Kind, Service
from sipguard.web import BanSummary, LiveStats, WebConfig, WebConfigError, WebServer
from sipguard.web.auth import hash_password

PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)


class Refused(Exception):
    pass


class FakeDaemon:
    """Answers like daemon.commands.Commands; records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []
        self.recorded: list[tuple[str, str, str, str]] = []
        self.events: list[Event] = []
        self.bans: list[dict[str, Any]] = [
            {
                "network": "203.0.113.9/32",
                "rule": "password-guessing",
                "reason": "5 wrong passwords",
                "origin": "local",
                "start": 1000.0,
                "remaining": 3000.0,
            },
            {
                "network": "198.51.100.0/24",
                "rule": "manual",
                "reason": "by hand",
                "origin": "manual",
                "start": 2000.0,
                "remaining": None,
            },
        ]

    async def handle(self, cmd: str, args: dict[str, object]) -> object:
        self.calls.append((cmd, args))
        if cmd == "status":
            watching = [{"source": "log", "name": "/x", "state": "following", "active": True}]
            return {"watching": watching, "firewall": {"errors": 0}}
        if cmd == "bans":
            return [dict(b) for b in self.bans]
        if cmd == "ban_summary":  # as daemon/dashboard.py answers it, from these rows
            rows = {b["network"]: b for b in self.bans}
            active = [
                Decision(
                    network=ip_network(b["network"]),
                    action=Action.BAN,
                    rule=b["rule"],
                    reason=b["reason"],
                    start=b["start"],
                    expires=None,
                    origin=b["origin"],
                )
                for b in self.bans
            ]
            return BanSummary(lambda d, now: dict(rows[str(d.network)]))(active, 0.0)
        if args.get("addr") == "192.0.2.200":
            raise Refused("192.0.2.200 is not banned")
        return {"done": cmd}

    async def record(self, who: str, action: str, target: str, result: str) -> None:
        self.recorded.append((who, action, target, result))


Body = Callable[[WebServer, FakeDaemon, str, aiohttp.ClientSession], Awaitable[None]]


def serve(body: Body, **kw: Any) -> None:
    async def main() -> None:
        fake = FakeDaemon()
        cfg = WebConfig(port=0, push_interval=0.05, **kw)
        server = WebServer(
            cfg, fake.handle, (Refused,), LiveStats(), fake.events.append, fake.record
        )
        await server.start()
        try:
            jar = aiohttp.CookieJar(unsafe=True)  # cookies for a bare IP address
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                await body(server, fake, f"http://127.0.0.1:{server.port}", http)
        finally:
            await server.close()

    asyncio.run(main())


def test_loopback_needs_no_login_but_every_post_needs_the_csrf_token() -> None:
    async def body(server: WebServer, fake: FakeDaemon, url: str, http: Any) -> None:
        async with http.get(url + "/") as r:
            assert r.status == 200 and "sipguard" in await r.text()
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Frame-Options"] == "DENY"
        async with http.get(url + "/api/session") as r:
            session = await r.json()
        assert session["user"] == "local" and session["login"] is False
        action = {"action": "ban", "addr": "192.0.2.7", "for": "2h"}
        # no token, a wrong token, a foreign origin: refused before any command runs
        async with http.post(url + "/api/action", json=action) as r:
            assert r.status == 403
        bad = {"X-CSRF-Token": "nope"}
        async with http.post(url + "/api/action", json=action, headers=bad) as r:
            assert r.status == 403
        foreign = {"X-CSRF-Token": session["csrf"], "Origin": "http://evil.example"}
        async with http.post(url + "/api/action", json=action, headers=foreign) as r:
            assert r.status == 403
        assert not [c for c in fake.calls if c[0] == "ban"]
        assert server.counts["csrf_refused"] == 3
        # with the token: the daemon's ban command, recorded with who did it
        good = {"X-CSRF-Token": session["csrf"], "Origin": url}
        async with http.post(url + "/api/action", json=action, headers=good) as r:
            assert r.status == 200, await r.text()
        cmd, args = fake.calls[-1]
        assert cmd == "ban" and args["addr"] == "192.0.2.7" and args["for"] == "2h"
        assert "web: local" in str(args["reason"])
        assert fake.recorded[-1] == ("local", "ban", "192.0.2.7", "ok")
        # a refusal from the daemon is a 400 with its text, and recorded too
        unban = {"action": "unban", "addr": "192.0.2.200"}
        async with http.post(url + "/api/action", json=unban, headers=good) as r:
            assert r.status == 400 and "not banned" in (await r.json())["error"]
        assert fake.recorded[-1][3].startswith("refused")
        # garbage is refused, never a crash
        for payload in (b"{", b"[]", b'{"action": "rm -rf"}', b"\xff\xfe"):
            async with http.post(url + "/api/action", data=payload, headers=good) as r:
                assert r.status == 400

    serve(body)


def test_search_tables_and_explain_go_through_the_commands() -> None:
    async def body(server: WebServer, fake: FakeDaemon, url: str, http: Any) -> None:
        async with http.get(url + "/api/bans", params={"q": "MANUAL"}) as r:
            rows = await r.json()
        assert [b["network"] for b in rows] == ["198.51.100.0/24"]
        async with http.get(url + "/api/bans") as r:
            assert [b["network"] for b in await r.json()] == ["198.51.100.0/24", "203.0.113.9/32"]
        async with http.get(url + "/api/explain", params={"addr": "192.0.2.200"}) as r:
            assert r.status == 400
        async with http.get(url + "/api/explain", params={"addr": "203.0.113.9"}) as r:
            assert r.status == 200
        assert fake.calls[-1] == ("explain", {"addr": "203.0.113.9"})
        async with http.get(url + "/static/chart.umd.min.js") as r:
            assert r.status == 200 and "Chart" in await r.text()
        async with http.get(url + "/static/..%2fserver.py") as r:
            assert r.status == 404

    serve(body)


def test_the_stream_pushes_the_overview_with_bans_by_origin() -> None:
    async def body(server: WebServer, fake: FakeDaemon, url: str, http: Any) -> None:
        seen = []
        async with http.get(url + "/api/stream") as r:
            assert r.headers["Content-Type"].startswith("text/event-stream")
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if len(seen) == 3:
                        break
        assert seen[0]["active_bans"] == 2
        assert seen[-1]["bans_by_origin"] == {"local": 1, "manual": 1}
        assert seen[-1]["health"]["watching"][0]["state"] == "following"

    serve(body)


def test_many_viewers_and_page_loads_cost_one_overview_an_interval() -> None:
    async def body(server: WebServer, fake: FakeDaemon, url: str, http: Any) -> None:
        async def watch(frames: int) -> list[bytes]:
            got = []
            async with http.get(url + "/api/stream") as r:
                async for raw in r.content:
                    if raw.startswith(b"data: "):
                        got.append(raw)
                        if len(got) == frames:
                            break
            return got

        async def load() -> bytes:
            async with http.get(url + "/api/overview") as r:
                assert r.status == 200
                return bytes(await r.read())

        streams = [asyncio.create_task(watch(5)) for _ in range(20)]
        pages = await asyncio.gather(*(load() for _ in range(30)))
        assert len(set(pages)) == 1  # asked at once: the same snapshot
        assert json.loads(pages[0])["active_bans"] == 2
        await asyncio.gather(*streams)
        # 20 viewers x 5 pushes and 30 page loads: one overview a push, not one a viewer
        made = [c for c in fake.calls if c[0] == "status"]
        assert server.feed.made == len(made) <= 9, len(made)

    serve(body)


def test_beyond_loopback_a_password_is_required_to_start() -> None:
    with pytest.raises(WebConfigError, match=r"web\.password_hash"):
        WebConfig(listen="0.0.0.0").check()
    with pytest.raises(WebConfigError, match="scrypt"):
        WebConfig(listen="0.0.0.0", password_hash="md5$abc").check()
    with pytest.raises(WebConfigError, match="tls_key"):
        WebConfig(tls_cert="/x.pem").check()
    WebConfig(listen="0.0.0.0", password_hash=HASH).check()


def test_login_required_limited_and_each_failure_is_an_event() -> None:
    async def body(server: WebServer, fake: FakeDaemon, url: str, http: Any) -> None:
        async with http.get(url + "/api/overview") as r:
            assert r.status == 401
        async with http.get(url + "/", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        async with http.get(url + "/login") as r:
            assert r.status == 200 and 'name="password"' in await r.text()
        wrong = {"user": "admin", "password": "guess"}
        for _ in range(3):
            async with http.post(url + "/login", data=wrong, allow_redirects=False) as r:
                assert r.status == 303 and "failed" in r.headers["Location"]
        # the limit (3 a minute here): refused without trying, and still an event
        async with http.post(url + "/login", data=wrong, allow_redirects=False) as r:
            assert r.status == 429
        assert len(fake.events) == 4
        e = fake.events[0]
        assert (e.kind, e.service, str(e.ip), e.account) == (
            Kind.WEB_LOGIN_FAILED,
            Service.WEB,
            "127.0.0.1",
            "admin",
        )
        assert [r[1] for r in fake.recorded] == ["login_failed"] * 3
        server.limiter.succeeded("127.0.0.1")  # a minute later
        right = {"user": "admin", "password": PASSWORD}
        async with http.post(url + "/login", data=right, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.cookies["sipguard_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert fake.recorded[-1] == ("admin", "login", "127.0.0.1", "ok")
        async with http.get(url + "/api/session") as r:
            session = await r.json()
        assert session["user"] == "admin" and session["login"] is True
        # logged in, a POST still needs the token; with it, the action names the user
        act = {"action": "allow", "addr": "192.0.2.0/24", "note": "office"}
        async with http.post(url + "/api/action", json=act) as r:
            assert r.status == 403
        headers = {"X-CSRF-Token": session["csrf"]}
        async with http.post(url + "/api/action", json=act, headers=headers) as r:
            assert r.status == 200
        assert fake.calls[-1] == ("allow", {"cidr": "192.0.2.0/24", "note": "office (web: admin)"})
        assert fake.recorded[-1] == ("admin", "allow", "192.0.2.0/24", "ok")
        async with http.post(url + "/logout", headers=headers, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(url + "/api/session") as r:
            assert r.status == 401

    serve(body, listen="127.0.0.1", password_hash=HASH, login_attempts=3)


def test_tls_from_certificate_files_and_the_cookie_is_secure(tmp_path) -> None:
    import shutil

    from sipguard.testing.certs import self_signed

    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a test certificate")
    cert, key = self_signed(tmp_path, "127.0.0.1")
    with pytest.raises(WebConfigError, match="cannot load"):
        WebConfig(tls_cert=str(key), tls_key=str(key)).ssl_context()

    async def body(server: WebServer, fake: FakeDaemon, url: str, http: Any) -> None:
        tls = url.replace("http://", "https://")
        async with http.get(tls + "/api/session", ssl=False) as r:
            assert r.status == 200
            assert r.cookies["sipguard_session"]["secure"]
        with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port: no answer
            async with http.get(url + "/api/session") as r:
                await r.read()

    serve(body, tls_cert=str(cert), tls_key=str(key))
