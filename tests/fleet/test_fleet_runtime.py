"""Two FleetRuntimes in one process (real Enforcer with the dry-run firewall, real SQLite
store, real redis-server): fraud ranges, replayed entries, local unban wins locally, a longer
local ban is kept, the snapshot for a node that joins late, and `[fleet]` config errors."""

from __future__ import annotations

import asyncio
import time
from ipaddress import ip_network
from pathlib import Path

import pytest

from sipguard.actions import make_firewall
from sipguard.config.errors import ConfigError
from sipguard.config.settings import FleetSettings, load_settings
from sipguard.core import Action, Decision
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.fleet import FleetRuntime
from sipguard.fleet.config import load_fleet_config
from sipguard.policy import AllowList
from sipguard.store import Store
from sipguard.store.fleet import FleetState
from sipguard.testing.redis_server import RedisServer, redis_available

KEY = "fleet-test-key-0123456789abcdef"
pytestmark = pytest.mark.skipif(not redis_available(), reason="no redis-server")


@pytest.fixture
def redis(tmp_path):
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def settings(tmp: Path, name: str, url: str, **kw: object) -> FleetSettings:
    key = tmp / "key"
    key.write_text(KEY)
    return FleetSettings(enabled=True, node=name, url=url, key_file=str(key), **kw)  # type: ignore[arg-type]


class Node:
    def __init__(self, tmp: Path, name: str, url: str, **kw: object) -> None:
        cfg = load_fleet_config(settings(tmp, name, url, **kw), "t.toml")
        assert cfg is not None
        self.store = Store.open(tmp / f"{name}.db")
        self.enforcer = Enforcer(make_firewall("dry-run"), self.store, [])
        self.allow = AllowList([])
        self.rt = FleetRuntime(cfg, self.enforcer, FleetState(self.store), lambda: self.allow)
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> Node:
        await self.enforcer.start(time.time())
        self.tasks = [asyncio.create_task(self.enforcer.run()), asyncio.create_task(self.rt.run())]
        return self

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.enforcer.io(self.store.close)
        await self.enforcer.close()

    async def ban(self, net: str, seconds: float | None = 600, origin: str = "local") -> None:
        now = time.time()
        d = Decision(
            ip_network(net),
            Action.BAN,
            "r",
            "why",
            now,
            None if seconds is None else now + seconds,
            origin=origin,
        )
        await self.enforcer.ban([d])


async def until(cond, timeout: float = 10.0, msg=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, msg() if msg else "condition not met"
        await asyncio.sleep(0.02)


def test_ranges_replay_local_unban_longer_ban_snapshot(tmp_path, redis):
    async def main() -> None:
        # a only publishes: were it to apply b's permanent ban of 198.51.100.1 before its own
        # shorter one below, it would have nothing new to send (a race, not what is tested)
        a = await Node(tmp_path, "a", redis.url, consume=False).start()
        b = await Node(tmp_path, "b", redis.url).start()
        try:
            # fraud intelligence: a range reported on a becomes b's hotlist entry
            got: list[tuple[str, str]] = []
            b.rt.on_range = lambda p, lab: got.append((p, lab))
            a.rt.publish_range("+882345", "satellite fraud", time.time() + 3600)
            await until(lambda: got == [("882345", "satellite fraud")])
            assert b.rt.hotlist(time.time()) == {"882345": "satellite fraud"}

            # b banned 198.51.100.1 itself, for longer: a's shorter fleet ban does not shorten it
            await b.ban("198.51.100.1/32", None)
            await a.ban("198.51.100.1/32", 60)
            await until(lambda: b.rt.counts["already_banned"] >= 1, msg=lambda: dict(b.rt.counts))
            assert b.enforcer.active[ip_network("198.51.100.1/32")].origin == "local"

            # an operator on b lifts a's ban: a's later copies of that decision stay lifted on b
            await a.ban("198.51.100.2/32")
            net = ip_network("198.51.100.2/32")
            await until(lambda: net in b.enforcer.active)
            old = b.enforcer.active[net]
            await b.enforcer.unban([net], "manual unban")
            assert b.rt.unbanned_locally[net] >= old.start
            # b's unban of a fleet ban is not sent (no echo): a keeps its own ban
            await asyncio.sleep(0.3)
            assert net in a.enforcer.active

            # an entry copied back into the stream is a replay
            raw = redis.cli("XRANGE", "sipguard:stream", "-", "+", "COUNT", "1").splitlines()[-1]
            redis.cli("XADD", "sipguard:stream", "*", "m", raw)
            await until(lambda: b.rt.counts["replayed"] == 1)
        finally:
            await a.stop()
            await b.stop()
        # a node that joins late starts from the snapshot: a's active bans, not the whole stream
        c = await Node(tmp_path, "c", redis.url).start()
        try:
            await until(lambda: ip_network("198.51.100.2/32") in c.enforcer.active)
            assert c.enforcer.active[ip_network("198.51.100.2/32")].origin == "fleet:a"
            assert c.rt.hotlist(time.time()) == {"882345": "satellite fraud"}
            assert c.rt.status()["connected"] is True
        finally:
            await c.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ('url = "http://x"', "fleet.url", "must start with"),
        ('node = "bad node"', "fleet.node", "letters, digits"),
        ("quorum = 0", "fleet.quorum", "at least 1"),
        ("quorum_window = 0", "fleet.quorum_window", "positive"),
        ('share = "yes"', "fleet.share", "expected bool"),
        ("colour = 1", "fleet.colour", "unknown key"),
    ],
)
def test_fleet_settings_errors_are_one_line(tmp_path, text, key, why):
    f = tmp_path / "s.toml"
    f.write_text(f"[fleet]\n{text}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(f)
    msg = str(exc.value)
    assert "\n" not in msg and str(f) in msg and key in msg and why in msg


def test_fleet_files_are_checked(tmp_path):
    s = settings(tmp_path, "a", "redis://127.0.0.1:1/0")
    assert load_fleet_config(FleetSettings(), "t.toml") is None
    (tmp_path / "key").write_text("short")
    with pytest.raises(ConfigError, match=r"t\.toml: fleet\.key_file: .*at least 16 bytes"):
        load_fleet_config(s, "t.toml")
    with pytest.raises(ConfigError, match=r"fleet\.key_file: required"):
        load_fleet_config(FleetSettings(enabled=True, node="a"), "t.toml")
    (tmp_path / "key").write_text(KEY)
    creds = tmp_path / "creds"
    creds.write_text("sipguard:s3cret\n")
    from dataclasses import replace

    cfg = load_fleet_config(replace(s, credentials_file=str(creds)), "t.toml")
    assert cfg is not None and (cfg.username, cfg.password) == ("sipguard", "s3cret")
    with pytest.raises(ConfigError, match=r"fleet\.credentials_file: .*absent"):
        load_fleet_config(replace(s, credentials_file=str(tmp_path / "absent")), "t.toml")


def test_url_password_is_masked(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[fleet]\nurl = "rediss://sg:hunter2@redis.example:6380/0"\n')
    d = load_settings(f).to_dict()
    assert d["fleet"]["url"] == "rediss://********@redis.example:6380/0"


def test_sentinel_url_parsing():
    from sipguard.fleet.link import sentinel_target

    assert sentinel_target("sentinel://h1:26380,h2/mymaster/2") == (
        [("h1", 26380), ("h2", 26379)],
        "mymaster",
        2,
    )
    with pytest.raises(ValueError, match="names the service"):
        sentinel_target("sentinel://h1:26379")
