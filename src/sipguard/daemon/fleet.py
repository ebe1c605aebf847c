"""The fleet inside the daemon: one more sink and source of decisions.

    Enforcer --banned/unbanned (local, manual)--> FleetSender (fleet_out) --XADD--> Redis
                                                    \\-- Redis away: SQLite outbox, drained later
    Redis --snapshot, then XREAD from the checkpoint--> verify (wire) --> admit (allow-list,
        local unban, remaining time, quorum) --> Enforcer.ban (origin "fleet:<node>")

A decision that came from the fleet is never published again (its origin says so). The stream
position and the replay guard are saved together after each applied batch, so a restarted node
goes on from there: nothing lost, nothing applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import RedisError

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Decision, Network
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.fleet_out import FleetSender
from sipguard.daemon.logs import kv
from sipguard.fleet.config import FleetConfig, load_fleet_config
from sipguard.fleet.link import STREAM_START, FleetLink, id_after, sentinel_target
from sipguard.fleet.wire import (
    FleetMessage,
    Quorum,
    Rejected,
    ReplayGuard,
    SeqClock,
    admit,
    from_decision,
    latest_per_target,
    shared,
    verify,
)
from sipguard.policy import AllowList
from sipguard.store.fleet import FleetState

log = logging.getLogger("sipguard.fleet")
READ_COUNT = 5000  # stream entries per XREAD: a 10,000-ban burst is two reads
MAX_INFLIGHT = 4  # applied batches on their way to the kernel while the next one is read
BLOCK_MS = 1000
MAX_BACKOFF = 30.0
MAX_UNBANNED = 100_000  # local unbans of fleet bans remembered (oldest forgotten first)
MAX_RANGES = 100_000  # fraud number ranges kept from the fleet (oldest forgotten first)
RangeSink = Callable[[str, str], None]  # (number prefix, label) -> fraud hotlist


class FleetRuntime:
    def __init__(
        self,
        cfg: FleetConfig,
        enforcer: Enforcer,
        state: FleetState,
        allowed: Callable[[], AllowList],
    ) -> None:
        self.cfg, self.enforcer, self.state = cfg, enforcer, state
        self.allowed = allowed  # the policy's allow-list right now
        self.counts: Counter[str] = Counter()
        self.out = FleetSender(cfg, enforcer.io, state, self.counts)
        self.reader = FleetLink(cfg)  # XREAD blocks: its own connection
        self.seq = SeqClock()
        self.guard = ReplayGuard(cfg.max_age)
        self.quorum = Quorum(cfg.quorum, cfg.quorum_window)
        self.unbanned_locally: dict[Network, float] = {}
        # fraud intelligence from other nodes: E.164 digit prefix -> (label, node, expiry)
        self.ranges: dict[str, tuple[str, str, float | None]] = {}
        self.on_range: RangeSink | None = None  # the fraud engine's hotlist, when one runs
        self.consuming = False
        self.lag = 0.0  # seconds from the deciding node's decision to it applied here
        self.position = STREAM_START  # the stream id applied and saved
        self.cursor = ""  # the stream id read (its bans may still be on their way in)
        self._inflight: deque[asyncio.Future[None]] = deque()

    # ---- local decisions out ---------------------------------------------------------------
    def banned(self, decisions: Sequence[Decision], extended: set[Network]) -> None:
        for d in decisions:
            if shared(d):
                self._queue("extend" if d.network in extended else "ban", d)

    def unbanned(self, decisions: Sequence[Decision], now: float) -> None:
        for d in decisions:
            if shared(d):
                self._queue("unban", d)
            else:  # an operator lifted a fleet ban here: later copies of it stay lifted here
                self.unbanned_locally.pop(d.network, None)
                self.unbanned_locally[d.network] = now
                while len(self.unbanned_locally) > MAX_UNBANNED:
                    self.unbanned_locally.pop(next(iter(self.unbanned_locally)))

    def publish_range(self, prefix: str, label: str, expires: float | None) -> None:
        """Fraud intelligence: a destination number range that raised a fraud alert here."""
        if not self.cfg.share:
            return
        now = time.time()
        msg = FleetMessage(
            "range",
            self.cfg.node,
            self.seq.next(now),
            now,
            prefix.lstrip("+"),
            rule="fraud",
            reason=label,
            start=now,
            expires=expires,
        )
        self.out.send(msg)

    def _queue(self, kind: str, d: Decision) -> None:
        if not self.cfg.share:
            return
        now = time.time()
        self.out.send(from_decision(d, kind, self.cfg.node, self.seq.next(now), now))

    # ---- fleet decisions in ----------------------------------------------------------------
    async def consumer(self) -> None:
        """Snapshot on the first start (or when the stream was trimmed past our position),
        then the stream from the saved position; reconnects with backoff."""
        saved = await self.enforcer.io(self.state.get, "guard")
        if isinstance(saved, dict):
            self.guard.load(saved)
        position = await self.enforcer.io(self.state.get, "position")
        self.position = self.cursor = position if isinstance(position, str) else ""
        backoff = 0.5
        while True:
            try:
                await self.reader.open()
                self.consuming = True
                self.out.up()
                first = await self.reader.first_id()
                if not self.cursor or (first is not None and id_after(first, self.cursor)):
                    await self._from_snapshot()
                while True:
                    entries = await self.reader.read(self.cursor, BLOCK_MS, READ_COUNT)
                    if entries:
                        await self._apply_messages(self._verified(entries), entries[-1][0])
                    backoff = 0.5
            except (RedisError, OSError) as exc:
                self.consuming = False
                self.out.down(exc)
                await self.reader.close()
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    async def _from_snapshot(self) -> None:
        last_id, raws = await self.reader.snapshot()
        msgs = self._verified([("snapshot", raw) for raw in raws])
        ordered = sorted(latest_per_target(msgs), key=lambda m: m.seq)
        await self._apply_messages(ordered, last_id)
        kv(log, logging.INFO, "fleet snapshot applied", entries=len(raws), position=last_id)

    def _verified(self, entries: list[tuple[str, bytes | None]]) -> list[FleetMessage]:
        """The entries that are good messages from other nodes; the rest counted (and logged,
        except this node's own, read back)."""
        msgs: list[FleetMessage] = []
        for entry, raw in entries:
            try:
                if raw is None:
                    raise Rejected("unsigned", "no message field")
                msgs.append(verify(raw, self.cfg.key, own=self.cfg.node))
            except Rejected as exc:
                self.counts[exc.reason] += 1
                if exc.reason != "own":
                    kv(log, logging.WARNING, "fleet message dropped", reason=exc, entry=entry)
        return msgs

    async def _apply_messages(self, msgs: list[FleetMessage], last_id: str) -> None:
        now = time.time()
        bans: dict[Network, Decision] = {}
        unbans: list[Network] = []
        allow = self.allowed()
        for m in msgs:
            if m.node == self.cfg.node:
                self.counts["own"] += 1  # our own, read back: never applied twice (no echo)
                continue
            try:
                self.guard.check(m, now)
            except Rejected as exc:
                self.counts[exc.reason] += 1
                continue
            self.guard.accept(m)
            if not self.cfg.consume:
                continue
            try:
                self._admit(m, now, allow, bans, unbans)
            except Rejected as exc:
                self.counts[exc.reason] += 1
            except ValueError:
                self.counts["malformed"] += 1
            self.lag = max(0.0, now - m.sent)
        if unbans:
            await self._settle(0)  # the bans read before go in first: an unban never overtakes
            lifted = await self.enforcer.unban(unbans, "unbanned by the fleet", tell=False)
            self.counts["unbans_applied"] += len(lifted)
        # the next read overlaps this batch's kernel and disk work; the enforcer and its one I/O
        # thread keep the order, so each saved position covers only what is already applied
        self.cursor = last_id
        job = self._commit(list(bans.values()), last_id, self.guard.export())
        self._inflight.append(asyncio.ensure_future(job))
        await self._settle(MAX_INFLIGHT)

    async def _commit(self, bans: list[Decision], last_id: str, guard: dict[str, int]) -> None:
        if bans:
            wanted = {d.network for d in bans}
            done = await self.enforcer.ban(bans)
            self.counts["bans_applied"] += sum(
                1 for d in done if d.network in wanted and d.origin.startswith("fleet:")
            )
        await self.enforcer.io(self.state.put, {"position": last_id, "guard": guard})
        self.position = last_id

    async def _settle(self, keep: int) -> None:
        """Wait until at most `keep` applied batches are still on their way to the kernel."""
        while self._inflight and (len(self._inflight) > keep or self._inflight[0].done()):
            await self._inflight.popleft()

    def _admit(
        self,
        m: FleetMessage,
        now: float,
        allow: AllowList,
        bans: dict[Network, Decision],
        unbans: list[Network],
    ) -> None:
        if m.kind == "range":
            if m.expires is not None and m.expires <= now:
                raise Rejected("expired", m.target)
            label = m.reason or f"fleet:{m.node}"
            self.ranges.pop(m.target, None)
            self.ranges[m.target] = (label, m.node, m.expires)
            while len(self.ranges) > MAX_RANGES:
                self.ranges.pop(next(iter(self.ranges)))
            if self.on_range is not None:
                self.on_range(m.target, label)
            self.counts["ranges_applied"] += 1
            return
        if m.kind == "unban":
            net = m.network()
            bans.pop(net, None)
            self.quorum.forget(m.target)
            active = self.enforcer.active.get(net)
            if active is not None and active.origin.startswith("fleet:"):
                unbans.append(net)  # a ban decided here, or by hand, stays
            return
        decision = admit(m, now, allow, self.unbanned_locally)
        if not self.quorum.report(m.target, m.node, m.sent, now):
            raise Rejected("quorum_pending")
        active = self.enforcer.active.get(decision.network)
        if active is not None and (
            active.expires is None
            or (decision.expires is not None and active.expires >= decision.expires)
        ):
            self.counts["already_banned"] += 1  # a longer ban is in place: keep it
            return
        bans[decision.network] = decision

    def hotlist(self, now: float) -> dict[str, str]:
        """The number ranges other nodes reported, unexpired: prefix -> label (for the fraud
        rules' hotlist, as `[daemon.fraud] hotlist` rows are)."""
        return {p: lab for p, (lab, _n, exp) in self.ranges.items() if exp is None or exp > now}

    # ---- run, status -----------------------------------------------------------------------
    async def run(self) -> None:
        self.enforcer.listeners.append(self)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.out.run())
                if self.cfg.consume:
                    tg.create_task(self.consumer())
                tg.create_task(self._pruner())
        finally:
            for job in self._inflight:
                job.cancel()
            self.enforcer.listeners.remove(self)
            await self.reader.close()
            await self.out.close()

    async def _pruner(self) -> None:
        while True:
            await asyncio.sleep(60)
            if self.out.connected and self.cfg.share:
                try:
                    await self.out.link.prune(time.time())
                except (RedisError, OSError) as exc:
                    self.out.down(exc)

    def status(self) -> dict[str, Any]:
        return {
            "enabled": True,
            "node": self.cfg.node,
            "connected": self.out.connected and (self.consuming or not self.cfg.consume),
            "share": self.cfg.share,
            "consume": self.cfg.consume,
            "quorum": self.cfg.quorum,
            "lag_seconds": round(self.lag, 3),
            "outbox": self.out.waiting,
            "position": self.position,
            "fraud_ranges": len(self.ranges),
            "last_error": self.out.last_error,
            "counts": dict(self.counts),
        }


def check_fleet(settings: Settings) -> FleetConfig | None:
    """`[fleet]` with its files read and checked; None when off; ConfigError (one line)."""
    file = settings.files[-1] if settings.files else "<defaults>"
    cfg = load_fleet_config(settings.fleet, file)
    try:  # a sentinel URL without a service name is found now, not at the first use
        if cfg is not None and cfg.url.startswith(("sentinel://", "sentinels://")):
            sentinel_target(cfg.url)
    except ValueError as exc:
        raise ConfigError(file, "fleet.url", str(exc)) from None
    return cfg


async def build_fleet(
    settings: Settings, enforcer: Enforcer, allowed: Callable[[], AllowList]
) -> FleetRuntime | None:
    """The fleet runtime for `[fleet]`, or None when it is off (ConfigError when it is wrong)."""
    cfg = check_fleet(settings)
    if cfg is None:
        return None
    state = await enforcer.io(FleetState, enforcer.store)
    return FleetRuntime(cfg, enforcer, state, allowed)
