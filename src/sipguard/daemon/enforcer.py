"""Puts decisions into the kernel and the store, and takes them out again.

All firewall and SQLite work runs on ONE worker thread, in order, so the event loop never blocks
on the kernel or a disk sync and the store's connection stays on the thread that opened it.
Decisions that arrive while a commit is running are gathered into the next batch: a burst of
1,000 attackers becomes a few atomic nft transactions, not 1,000.

The kernel gets the ban first and the store right after: reaction time is what this tool is for,
and a kill -9 between the two is repaired by `start()` (kernel set := active decisions).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from sipguard.core import Action, Decision, Network
from sipguard.daemon.allow import overlaps_any
from sipguard.daemon.logs import kv
from sipguard.metrics import Latency

log = logging.getLogger("sipguard.enforce")
T = TypeVar("T")
MAX_RETRY = 100_000  # failed bans kept for retry (the newest win)
# bans waiting for the I/O thread: the decisions, who waits for them, when their line was read
_Pending = tuple[list[Decision], "asyncio.Future[list[Decision]]", float | None]


class Timing:
    """Counts and worst case of one kind of kernel call, for `status` and bench/reaction."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self.last = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.last = seconds
        self.max = max(self.max, seconds)

    def to_dict(self) -> dict[str, float]:
        mean = self.total / self.count if self.count else 0.0
        return {
            "count": self.count,
            "mean_ms": round(mean * 1000, 3),
            "max_ms": round(self.max * 1000, 3),
            "last_ms": round(self.last * 1000, 3),
        }


class DecisionListener(Protocol):
    """Told what went into the kernel and what an operator took out (the fleet shares them)."""

    def banned(self, decisions: Sequence[Decision], extended: set[Network]) -> None: ...

    def unbanned(self, decisions: Sequence[Decision], now: float) -> None: ...


class Enforcer:
    def __init__(self, firewall: Any, store: Any, allowed: Sequence[Network]) -> None:
        self.firewall = firewall
        self.store = store
        self.allowed: list[Network] = list(allowed)
        self.active: dict[Network, Decision] = {}
        self.refused_allowed = 0
        self.errors = 0
        self.add_timing = Timing()
        self.remove_timing = Timing()
        self._retry: list[Decision] = []
        self.listeners: list[DecisionListener] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # set by run(), for the listeners
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sipguard-io")
        # observers of each batch of bans now in the kernel (the notifier's digest)
        self.on_banned: list[Callable[[list[Decision]], None]] = []
        # line read -> in the kernel set, for the bans whose caller says when it read the line
        self.latency: Latency | None = None
        self._added_at = 0.0  # monotonic time the last batch went into the kernel
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()

    async def io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn on the I/O thread (the store and the firewall live there)."""
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def start(self, now: float) -> dict[str, int]:
        """Create the kernel objects and make the kernel set equal the store's active decisions."""
        await self.io(self.firewall.init)
        active = await self.io(self.store.active_decisions, now)
        keep: list[Decision] = []
        for d in active:
            hit = overlaps_any(d.network, self.allowed) if d.origin != "manual-force" else None
            if hit is not None:
                # the allow-list changed while the ban was stored: the allow-list wins
                await self.io(self.store.end_decision, d.network, now, f"allow-listed ({hit})")
                continue
            keep.append(d)
        self.active = {d.network: d for d in keep}
        await self.io(self._share_allowed)
        result = await self.io(self.firewall.reconcile, keep, now)
        counts = {
            "active": len(keep),
            "added": len(result.added),
            "removed": len(result.removed),
            "kept": len(result.kept),
        }
        kv(log, logging.INFO, "kernel set reconciled with stored decisions", **counts)
        return counts

    async def run(self) -> None:
        """The batching worker: one task, for the daemon's TaskGroup."""
        self._loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            decisions = [d for ds, _, _ in batch for d in ds]
            try:
                done = await self.io(self._commit, decisions)
            except Exception as exc:
                # the kernel or the disk refused: keep the bans and retry them on the next tick,
                # rather than failing the source that found them (it would only re-read them)
                self.errors += 1
                self._retry.extend(decisions)
                del self._retry[:-MAX_RETRY]
                kv(log, logging.ERROR, "ban failed, will retry", error=exc, count=len(decisions))
                done = []
            for d in done:
                self.active[d.network] = d
            if done:
                self._observe(batch, done)
            for _, fut, _ in batch:
                if not fut.done():
                    fut.set_result(done)

    def _observe(self, batch: list[_Pending], done: list[Decision]) -> None:
        if self.latency is not None:
            banned = {d.network for d in done}
            for ds, _, read_at in batch:
                if read_at is None:
                    continue
                n = sum(1 for d in ds if d.network in banned)
                if n:
                    self.latency.observe(self._added_at - read_at, n)
        for observer in self.on_banned:
            try:
                observer(done)
            except Exception as exc:  # an observer's bug must not stop enforcement
                kv(log, logging.ERROR, "ban observer failed", error=exc)

    async def ban(
        self, decisions: Sequence[Decision], force: bool = False, read_at: float | None = None
    ) -> list[Decision]:
        """Queue bans and wait until they are in the kernel and the store. Non-ban decisions and
        allow-listed networks are dropped here (the second allow-list check, after policy).
        `read_at` (monotonic): when the line behind them was read, for the latency histogram."""
        todo: list[Decision] = []
        for d in decisions:
            if d.action is not Action.BAN:
                continue
            hit = None if force else overlaps_any(d.network, self.allowed)
            if hit is not None:
                self.refused_allowed += 1
                kv(log, logging.WARNING, "ban refused: allow-listed", addr=d.network, allow=hit)
                continue
            todo.append(d)
        if not todo:
            return []
        fut: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
        await self._queue.put((todo, fut, read_at))
        return await fut

    def _commit(self, decisions: list[Decision]) -> list[Decision]:
        now = time.time()
        latest: dict[Network, list[Decision]] = {}  # per network, in order: each supersedes
        merged: list[Decision] = []  # another rule fired on a running ban: history, not a ban
        for d in decisions:
            if d.expires is not None and d.expires <= now:
                continue
            chain = latest.get(d.network)
            running = chain[-1] if chain else self.active.get(d.network)
            if running is not None and _joins(d, running, now):
                merged.append(d)
                continue
            latest.setdefault(d.network, []).append(d)
        if not latest and not merged:
            return []
        todo = [chain[-1] for chain in latest.values()]
        if todo:
            t0 = time.perf_counter()
            sent = set(self.firewall.add(todo, now))
            self._added_at = time.monotonic()
            self.add_timing.add(time.perf_counter() - t0)
            # the enforcer process may refuse some (its own allow-list, this host's addresses):
            # those are not bans, so the store does not record them as such
            todo = [d for d in todo if d.network in sent]
            latest = {n: chain for n, chain in latest.items() if n in sent}
            if self.listeners and self._loop is not None:  # told once the kernel has them,
                # not after the disk sync: the fleet's latency is what another PBX waits
                self._loop.call_soon_threadsafe(self._tell_banned, todo)
        with self.store.transaction():  # one commit (one disk sync) for the whole batch
            for chain in latest.values():
                for d in chain:
                    self.store.save_decision(d)  # with its evidence
            for d in merged:
                self.store.save_merged(d)
        # every decision writes its line, the ones that joined a running ban too
        lines = [(d, False) for chain in latest.values() for d in chain]
        for d, joined in lines + [(d, True) for d in merged]:
            kv(
                log,
                logging.WARNING,
                "banned",
                addr=d.network,
                rule=d.rule,
                level=d.level,
                duration=_dur(d),
                origin=d.origin,
                joined=joined,
                reason=d.reason,
            )
        return todo

    def _tell_banned(self, decisions: list[Decision]) -> None:
        # runs on the loop before `run` records the batch: still active = extended
        extended = {d.network for d in decisions if d.network in self.active}
        for listener in self.listeners:
            listener.banned(decisions, extended)

    async def retry(self) -> int:
        """Queue the bans that failed earlier once more (called from the daemon's tick)."""
        if not self._retry:
            return 0
        todo, self._retry = self._retry, []
        fut: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
        await self._queue.put((todo, fut, None))
        return len(todo)

    async def unban(
        self, networks: Sequence[Network], reason: str, tell: bool = True
    ) -> list[Network]:
        """Lift bans. `tell`: an operator's unban, which the listeners hear of (not an
        allow-list change or a fleet unban, which every node works out for itself)."""
        now = time.time()
        popped = [d for d in (self.active.pop(n, None) for n in networks) if d is not None]
        await self.io(self._remove, list(networks), now, reason)
        if tell and popped:
            for listener in self.listeners:
                listener.unbanned(popped, now)
        return [d.network for d in popped]

    def _remove(self, networks: list[Network], now: float, reason: str) -> None:
        if not networks:
            return
        t0 = time.perf_counter()
        try:
            self.firewall.remove(networks)
        except Exception as exc:  # the kernel may have dropped it already (timeout)
            kv(log, logging.DEBUG, "firewall remove", error=exc)
        self.remove_timing.add(time.perf_counter() - t0)
        for n in networks:
            self.store.end_decision(n, now, reason)
            kv(log, logging.INFO, "unbanned", addr=n, reason=reason)

    async def expire(self, now: float) -> list[Network]:
        """Forget decisions whose time is up (the kernel's own timeout removes them there too)."""
        gone = [n for n, d in self.active.items() if not d.active(now)]
        if gone:
            for n in gone:
                del self.active[n]
            await self.io(self._remove, gone, now, "expired")
        return gone

    async def set_allowed(self, allowed: Sequence[Network]) -> list[Network]:
        """New allow-list: lift any active ban that now overlaps it."""
        self.allowed = list(allowed)
        await self.io(self._share_allowed)
        lifted = [
            n
            for n, d in self.active.items()
            if d.origin != "manual-force" and overlaps_any(n, self.allowed) is not None
        ]
        if lifted:
            await self.unban(lifted, "allow-listed", tell=False)
        return lifted

    def _share_allowed(self) -> None:
        """Tell a separate enforcer process the allow-list (it keeps its configured part)."""
        share = getattr(self.firewall, "allow", None)
        if share is not None:
            share(self.allowed)

    async def firewall_status(self) -> dict[str, Any] | None:
        """The enforcer process's counters (privilege separation); None in one process."""
        status = getattr(self.firewall, "status", None)
        if status is None:
            return None
        result: dict[str, Any] = await self.io(status)
        return result

    async def close(self) -> None:
        try:
            await self.io(self.firewall.close)
        finally:
            self._io.shutdown(wait=True)

    def snapshot(self) -> list[Decision]:
        return sorted(self.active.values(), key=lambda d: d.start)


def _joins(d: Decision, running: Decision, now: float) -> bool:
    """A rule's decision on a network whose ban runs and lasts at least as long joins that ban
    (policy gives a second rule the running ban's expiry): the first reason stays the ban's."""
    if d.origin != "local" or running.origin != "local" or not running.active(now):
        return False
    return running.expires is None or (d.expires is not None and d.expires <= running.expires)


def _dur(d: Decision) -> str:
    return "permanent" if d.expires is None else f"{d.expires - d.start:g}s"


def forced(d: Decision) -> Decision:
    """Mark a manual `--force` ban so reconcile and allow-list changes leave it alone."""
    return replace(d, origin="manual-force")
