"""Feeds end to end: local HTTP servers speaking APIBAN, plain lists and the CrowdSec LAPI
stream, with their error answers, into real nftables sets in a namespace the test creates. The
kernel sets must hold exactly the valid entries that are not allow-listed."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network

import pytest

from sipguard.actions import FirewallConfig, NftablesFirewall
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.feeds import Feeds
from sipguard.feeds.config import FeedConfig

pytestmark = pytest.mark.netns

KEY = "k3y"
ALLOW = [ip_network("198.51.100.0/24"), ip_network("203.0.113.128/25")]


class Server:
    """Answers each path from a queue of (status, body, headers); the last one repeats.
    A body given as ("truncate", bytes) promises more than it sends, then closes."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, object, dict[str, str]]]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:
                srv.seen.append((self.path, dict(self.headers)))
                queue = srv.routes.get(self.path) or [(404, b"no", {})]
                status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if isinstance(body, tuple):
                    self.send_header("Content-Length", str(len(body[1]) * 2))
                    self.end_headers()
                    self.wfile.write(body[1])
                    self.close_connection = True
                    return
                assert isinstance(body, bytes)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set(self, path: str, *answers: tuple[int, object, dict[str, str]]) -> None:
        self.routes[path] = list(answers)


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


def decision(value: str, duration: str = "4h", scope: str = "Ip") -> dict[str, str]:
    return {"scope": scope, "value": value, "type": "ban", "duration": duration, "origin": "cs"}


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def as_set(*xs: str) -> set:
    return {ip_network(x) for x in xs}


def test_feeds_into_kernel_sets_with_errors(netlab, server, tmp_path):
    pbx = netlab.add_host("pbx")
    fw = NftablesFirewall(FirewallConfig(netns=pbx.name))
    fw.init()
    plain_file = tmp_path / "list.txt"
    plain_file.write_text("# local list\n192.0.2.10\n192.0.2.0/28\n203.0.113.200\n")
    configs = [
        FeedConfig("voipbl", "plain", url=f"{server.url}/voipbl.txt"),
        FeedConfig("local", "plain", file=str(plain_file)),
        FeedConfig("apiban", "apiban", url=server.url, key_file="x"),
        FeedConfig("cs", "crowdsec", url=server.url, key_file="x", max_bytes=1024 * 1024),
    ]
    keys = {"apiban": KEY, "cs": KEY}
    # round 1: everything answers well (with garbage lines, which are counted and skipped)
    server.set(
        "/voipbl.txt",
        (200, b"# VoIPBL\n45.0.0.0/16\n198.51.100.7\njunk\n203.0.113.0/24\n", {"ETag": '"v1"'}),
    )
    server.set(f"/api/{KEY}/banned", (200, js({"ipaddress": ["185.1.1.1", "x"], "ID": 100}), {}))
    server.set(f"/api/{KEY}/banned/100", (200, js({"ipaddress": ["185.1.1.2"], "ID": 101}), {}))
    server.set(
        f"/api/{KEY}/banned/101", (400, js({"ipaddress": ["no new bans"], "ID": "none"}), {})
    )
    startup = {
        "new": [decision("91.1.1.1"), decision("92.0.0.0/24", scope="Range"), decision("nope")],
        "deleted": None,
    }
    server.set("/v1/decisions/stream?startup=true", (200, js(startup), {}))

    async def scenario() -> None:
        enforcer = Enforcer(fw, None, ALLOW)
        feeds = Feeds(enforcer, lambda: enforcer.allowed)
        await feeds.configure(configs, keys)
        for c in configs:
            await feeds.refresh(c.name)
        # the allow-listed /24 goes, the /24 around an allowed /25 is narrowed to the other half
        assert fw.list_feed("voipbl") == as_set("45.0.0.0/16", "203.0.113.0/25")
        assert fw.list_feed("local") == as_set("192.0.2.0/28")  # the /32 inside it collapses
        assert fw.list_feed("apiban") == as_set("185.1.1.1", "185.1.1.2")
        assert fw.list_feed("cs") == as_set("91.1.1.1", "92.0.0.0/24")
        assert feeds.states["voipbl"].counts["invalid"] == 1
        assert feeds.states["apiban"].cursor == "101"

        # round 2: 5xx, 429, a truncated body, 10 MB of junk: every set keeps its last good list
        before = {c.name: fw.list_feed(c.name) for c in configs}
        server.set("/voipbl.txt", (503, b"busy", {}))
        server.set(f"/api/{KEY}/banned/101", (429, b"slow down", {"Retry-After": "120"}))
        server.set("/v1/decisions/stream?startup=false", (200, ("truncate", b'{"new": ['), {}))
        plain_file.write_bytes(os.urandom(9 * 1024 * 1024))  # over the 8 MB cap
        for c in configs:
            await feeds.refresh(c.name)
        assert {c.name: fw.list_feed(c.name) for c in configs} == before
        errors = {n: s.last_error for n, s in feeds.states.items()}
        assert errors["voipbl"] == "HTTP 503" and "429" in errors["apiban"]
        assert "truncated" in errors["cs"] and "larger than" in errors["local"]
        assert feeds.states["apiban"].next_at >= feeds.states["apiban"].last_attempt + 119

        # APIBAN answers 10 MB of junk, the LAPI a 500: still the last lists
        junk = os.urandom(10 * 1024 * 1024)
        server.set(f"/api/{KEY}/banned/101", (200, junk, {}))
        server.set("/v1/decisions/stream?startup=true", (500, b"oops", {}))
        await feeds.refresh("apiban")
        await feeds.refresh("cs")
        assert fw.list_feed("apiban") == before["apiban"] and fw.list_feed("cs") == before["cs"]
        assert "larger than" in feeds.states["apiban"].last_error
        assert feeds.states["cs"].last_error == "HTTP 500"

        # 10 MB of junk text under a larger cap: parsed, nothing valid, still the last list
        plain_file.write_bytes(b"<junk>" * (10 * 1024 * 1024 // 6))
        feeds.configs["local"] = FeedConfig(
            "local", "plain", file=str(plain_file), max_bytes=16 * 1024 * 1024
        )
        await feeds.refresh("local")
        assert fw.list_feed("local") == before["local"]
        assert "no valid entry" in feeds.states["local"].last_error

        # round 3: 304 keeps the list (the ETag was sent); "no new bans"; a CrowdSec resync after
        # the failure (startup=true again) that drops one decision and adds a range
        server.set("/voipbl.txt", (304, b"", {}))
        server.set(
            f"/api/{KEY}/banned/101", (400, js({"ipaddress": ["no new bans"], "ID": "none"}), {})
        )
        resync = {"new": [decision("92.0.0.0/24", scope="Range"), decision("93.1.0.0/16")]}
        server.set("/v1/decisions/stream?startup=true", (200, js(resync), {}))
        for name in ("voipbl", "apiban", "cs"):
            await feeds.refresh(name)
        assert server.seen[-3][1].get("If-None-Match") == '"v1"'
        assert fw.list_feed("voipbl") == before["voipbl"]
        assert fw.list_feed("apiban") == before["apiban"]
        assert fw.list_feed("cs") == as_set("92.0.0.0/24", "93.1.0.0/16")
        # a delta on top: one deleted, one new
        delta = {"new": [decision("94.1.1.1")], "deleted": [decision("93.1.0.0/16")]}
        server.set("/v1/decisions/stream?startup=false", (200, js(delta), {}))
        await feeds.refresh("cs")
        assert fw.list_feed("cs") == as_set("92.0.0.0/24", "94.1.1.1")
        assert server.seen[-1][1].get("X-Api-Key") == KEY

        # a new allow-list entry narrows the loaded sets at once
        enforcer.allowed = [*ALLOW, ip_network("94.1.1.1")]
        feeds.allow_changed()
        await feeds._load("cs")
        assert fw.list_feed("cs") == as_set("92.0.0.0/24")
        await enforcer.close()

    asyncio.run(scenario())
    # the feed sets drop traffic: their rules sit in the table's feeds chain
    rules = netlab.run(pbx, ["nft", "list", "chain", "inet", "sipguard", "feeds"]).stdout
    assert "@feed_voipbl_4n" in rules and "drop" in rules
    fw.teardown()
