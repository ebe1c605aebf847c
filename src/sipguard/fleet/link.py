"""The fleet's Redis side (redis-py asyncio): publish signed messages, read the snapshot of
active decisions and then the stream. Knows nothing of the kernel, the store or the policy.

    publish:  MULTI  XADD <prefix>:stream MAXLEN ~ N * m=<signed>
                     HSET <prefix>:active <net> <signed> + ZADD <prefix>:expiry   (ban, extend)
                     HDEL / ZREM                                                 (unban)
                     HSET <prefix>:ranges <prefix> <signed>                       (fraud range)
              EXEC
    snapshot: MULTI  XREVRANGE <stream> + - COUNT 1   HVALS active   HVALS ranges   EXEC
              (one atomic read: the stream position and the state it stands for agree)
    follow:   XREAD BLOCK <ms> COUNT <n> STREAMS <stream> <last id>
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from sipguard.fleet.config import FleetConfig

FIELD = b"m"
STREAM_START = "0-0"


@dataclass(frozen=True)
class Outgoing:
    kind: str  # ban | extend | unban | range
    target: str
    signed: bytes
    expires: float | None


def connect(cfg: FleetConfig) -> Any:
    """A client for `cfg.url`: redis://, rediss:// (TLS), unix://, or
    sentinel[s]://host:port[,host:port...]/service[/db] (Sentinel finds the master; with
    `sentinels://` the master connection uses TLS)."""
    auth: dict[str, Any] = {"username": cfg.username, "password": cfg.password}
    opts: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 3.0}
    if not cfg.url.startswith(("sentinel://", "sentinels://")):
        kw = {k: v for k, v in auth.items() if v is not None}
        return aioredis.Redis.from_url(cfg.url, **opts, **kw)
    hosts, service, db = sentinel_target(cfg.url)
    parts = urlsplit(cfg.url)
    sentinel_auth: dict[str, Any] = {}
    if parts.password is not None:  # the sentinels' own password, when the URL carries one
        sentinel_auth = {"password": unquote(parts.password)}
        if parts.username:
            sentinel_auth["username"] = unquote(parts.username)
    sentinel = Sentinel(hosts, sentinel_kwargs={**opts, **sentinel_auth}, **opts)
    ssl = cfg.url.startswith("sentinels://")
    return sentinel.master_for(service, db=db, ssl=ssl, **auth)


def sentinel_target(url: str) -> tuple[list[tuple[str, int]], str, int]:
    """sentinel://[user:pass@]host:port[,host:port...]/service[/db] -> (sentinels, service, db);
    ValueError naming what is missing."""
    parts = urlsplit(url)
    hosts: list[tuple[str, int]] = []
    for item in parts.netloc.rpartition("@")[2].split(","):
        host, colon, port = item.rpartition(":")
        if not colon or (":" in host and not host.endswith("]")):  # bare IPv6, no port
            host, port = item, ""
        if not host.strip("[]"):
            raise ValueError(f"no sentinel host in {item!r}")
        if port and not port.isdigit():
            raise ValueError(f"bad sentinel port in {item!r}")
        hosts.append((host.strip("[]"), int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a sentinel URL names the service: sentinel://host:26379/mymaster")
    if len(path) > 1 and not path[1].isdigit():
        raise ValueError(f"bad database number {path[1]!r}")
    return hosts, unquote(path[0]), int(path[1]) if len(path) > 1 else 0


class FleetLink:
    def __init__(self, cfg: FleetConfig) -> None:
        self.cfg = cfg
        self.client: Any = None

    async def open(self) -> None:
        if self.client is None:
            self.client = connect(self.cfg)
        await self.client.ping()

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.aclose()

    async def publish(self, items: Sequence[Outgoing]) -> None:
        """All of `items` in one transaction: the stream and the snapshot never disagree."""
        cfg = self.cfg
        pipe = self.client.pipeline(transaction=True)
        active: dict[str, bytes] = {}
        expiry: dict[str, float | str] = {}
        gone: list[str] = []
        ranges: dict[str, bytes] = {}
        for it in items:  # one XADD each; the snapshot keys in one command per batch
            pipe.xadd(cfg.stream, {FIELD: it.signed}, maxlen=cfg.maxlen, approximate=True)
            if it.kind in ("ban", "extend"):
                active[it.target] = it.signed
                expiry[it.target] = it.expires if it.expires else "+inf"
                if it.target in gone:
                    gone.remove(it.target)
            elif it.kind == "unban":
                active.pop(it.target, None)
                expiry.pop(it.target, None)
                gone.append(it.target)
            elif it.kind == "range":
                ranges[it.target] = it.signed
        if gone:
            pipe.hdel(cfg.active, *gone)
            pipe.zrem(cfg.expiry, *gone)
        if active:
            pipe.hset(cfg.active, mapping=active)
            pipe.zadd(cfg.expiry, expiry)
        if ranges:
            pipe.hset(cfg.ranges, mapping=ranges)
        await pipe.execute()

    async def prune(self, now: float) -> int:
        """Take expired bans out of the snapshot (the stream keeps its history)."""
        cfg = self.cfg
        gone = await self.client.zrangebyscore(cfg.expiry, "-inf", now, start=0, num=10_000)
        if gone:
            pipe = self.client.pipeline(transaction=True)
            pipe.hdel(cfg.active, *gone)
            pipe.zrem(cfg.expiry, *gone)
            await pipe.execute()
        return len(gone)

    async def snapshot(self) -> tuple[str, list[bytes]]:
        """The stream's last id and every signed message the snapshot holds (bans and ranges)."""
        cfg = self.cfg
        pipe = self.client.pipeline(transaction=True)
        pipe.xrevrange(cfg.stream, "+", "-", count=1)
        pipe.hvals(cfg.active)
        pipe.hvals(cfg.ranges)
        last, bans, ranges = await pipe.execute()
        last_id = _id(last[0][0]) if last else STREAM_START
        return last_id, [*bans, *ranges]

    async def first_id(self) -> str | None:
        """The oldest id the stream still holds (older entries were trimmed by MAXLEN)."""
        first = await self.client.xrange(self.cfg.stream, "-", "+", count=1)
        return _id(first[0][0]) if first else None

    async def read(self, after: str, block_ms: int, count: int) -> list[tuple[str, bytes | None]]:
        """Entries after `after`: (id, signed message or None when the entry has no `m`)."""
        got = await self.client.xread({self.cfg.stream: after}, count=count, block=block_ms)
        out: list[tuple[str, bytes | None]] = []
        for _stream, entries in got or []:
            for entry_id, fields in entries:
                value = fields.get(FIELD) if isinstance(fields, dict) else None
                out.append((_id(entry_id), value if isinstance(value, bytes) else None))
        return out


def _id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def id_after(a: str, b: str) -> bool:
    """Whether stream id `a` is later than `b` (ms-seq, compared as numbers)."""

    def parts(x: str) -> tuple[int, int]:
        ms, _, seq = x.partition("-")
        return int(ms), int(seq or 0)

    return parts(a) > parts(b)
