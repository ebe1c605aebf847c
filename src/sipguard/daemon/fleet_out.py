"""The fleet's outgoing side: this node's decisions to Redis, in order, never lost.

Signed messages wait in memory for the sender task, which publishes them in MULTI batches.
When Redis does not answer they go to the SQLite outbox (bounded); after a reconnect (backoff
0.5 s doubling to 30 s) the outbox is sent first, then what came since, so the order holds.
A stop with Redis away keeps what was not sent in the outbox for the next start."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from sipguard.daemon.logs import kv
from sipguard.fleet.config import FleetConfig
from sipguard.fleet.link import FleetLink, Outgoing
from sipguard.fleet.wire import FleetMessage, Rejected, sign, verify
from sipguard.store.fleet import FleetState

log = logging.getLogger("sipguard.fleet")
BATCH = 2000  # messages per MULTI
MAX_BACKOFF = 30.0
MAX_PENDING = 100_000  # messages in memory before they go to the outbox regardless
Io = Callable[..., Awaitable[Any]]  # the enforcer's I/O thread (the store lives there)


class FleetSender:
    def __init__(self, cfg: FleetConfig, io: Io, state: FleetState, counts: Counter[str]) -> None:
        self.cfg, self.io, self.state, self.counts = cfg, io, state, counts
        self.link = FleetLink(cfg)
        self.connected = False
        self.last_error = ""
        self.outbox = 0
        self._pending: list[Outgoing] = []
        self._wake = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Messages not yet in Redis: the outbox and the ones still in memory."""
        return self.outbox + len(self._pending)

    def send(self, msg: FleetMessage) -> None:
        try:
            signed = sign(msg, self.cfg.key)
        except Rejected:
            self.counts["not_sent_oversized"] += 1
            return
        self._pending.append(Outgoing(msg.kind, msg.target, signed, msg.expires))
        self.counts["queued"] += 1
        self._wake.set()

    async def run(self) -> None:
        self.outbox = await self.io(self.state.outbox_size)
        backoff = 0.5
        self._wake.set()  # connect now: `status` says at once whether Redis answers
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.link.open()
                self.up()
                await self._drain_outbox()
                while self._pending:
                    batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                    try:
                        await self.link.publish(batch)
                    except BaseException:
                        self._pending[:0] = batch
                        raise
                    self.counts["published"] += len(batch)
                backoff = 0.5
            except (RedisError, OSError) as exc:
                self.down(exc)
                await self._to_outbox()
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                self._wake.set()
            if len(self._pending) > MAX_PENDING:
                await self._to_outbox()

    async def close(self) -> None:
        await self.link.close()
        await self._to_outbox()

    async def _to_outbox(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            dropped = await self.io(self.state.outbox_add, [o.signed for o in batch])
            self.counts["outbox_dropped"] += dropped
            self.outbox = await self.io(self.state.outbox_size)

    async def _drain_outbox(self) -> None:
        while self.outbox:
            rows = await self.io(self.state.outbox_peek, BATCH)
            if not rows:
                self.outbox = 0
                return
            out = []
            for _, raw in rows:
                try:
                    m = verify(raw, self.cfg.key)
                except Rejected:  # signed with a key that has been changed since: unusable
                    self.counts["outbox_unusable"] += 1
                    continue
                out.append(Outgoing(m.kind, m.target, raw, m.expires))
            if out:
                await self.link.publish(out)
            await self.io(self.state.outbox_done, rows[-1][0])
            self.counts["published"] += len(out)
            self.counts["outbox_sent"] += len(out)
            self.outbox = await self.io(self.state.outbox_size)

    def up(self) -> None:
        if not self.connected:
            kv(log, logging.INFO, "fleet connected", node=self.cfg.node, outbox=self.outbox)
        self.connected = True

    def down(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.connected:
            kv(log, logging.WARNING, "fleet unreachable, local protection goes on", error=exc)
        self.connected = False
        self.counts["errors"] += 1
