"""The notifier: producers call it from the event loop, one task sends.

Detection must never wait for a mail server: every producer method only appends to memory or
`put_nowait`s into a bounded queue (a full queue drops the message and counts it). The sending
task delivers each message to the routes that want its kind and severity, through `Sender`
(apprise on its own thread, see send.py), retrying with doubling backoff; a route that keeps
failing counts the message as failed and moves on.

Bans are not sent one by one: they gather into a digest sent `digest_interval` seconds after
the first ban in it, so a burst of 1,000 bans is one message and there is at most one ban
message per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from sipguard.core import Alert, Decision
from sipguard.notify.config import NotifyConfig, Route

log = logging.getLogger("sipguard.notify")
DIGEST_ADDRESSES = 20  # addresses named in a digest; the rest are counted
MAX_BACKOFF = 60.0
OUTCOMES = ("queued", "sent", "failed", "retried", "dropped")


@dataclass(frozen=True)
class Message:
    kind: str
    severity: str
    title: str
    body: str


#: delivers one message to one route; True when every URL took it
Sender = Callable[[Route, Message], Awaitable[bool]]


class Notifier:
    def __init__(
        self,
        config: NotifyConfig,
        send: Sender,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._send = send
        self._clock = clock
        # per message: queued or dropped; per route it goes to: sent or failed (after retries)
        self.counts: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=config.queue_size)
        self._bans = 0
        self._ban_rules: Counter[str] = Counter()
        self._ban_addresses: list[str] = []
        self._digest_due: float | None = None
        self._wake = asyncio.Event()

    # ---- producers (event loop, never block, never raise) -------------------------------
    def post(self, message: Message) -> None:
        if not self.config.wants(message.kind, message.severity):
            return
        try:
            self._queue.put_nowait(message)
            self.counts["queued"] += 1
        except asyncio.QueueFull:
            self.counts["dropped"] += 1

    def banned(self, decisions: Iterable[Decision]) -> None:
        """Bans now in the kernel: into the next digest."""
        if not self.config.wants("ban", "medium"):
            return
        for d in decisions:
            self._bans += 1
            self._ban_rules[d.rule] += 1
            if len(self._ban_addresses) < DIGEST_ADDRESSES:
                self._ban_addresses.append(str(d.network))
        if self._bans and self._digest_due is None:
            self._digest_due = self._clock() + self.config.digest_interval
            self._wake.set()

    def alert(self, alert: Alert, decision: Decision | None) -> None:
        """The pipeline's alert observer: an account under attack from many sources is sent at
        once (its sources may each stay under the per-address thresholds)."""
        if alert.network is None and alert.key.startswith("account:"):
            self.post(
                Message(
                    "attack",
                    alert.severity,
                    f"sipguard: distributed attack on {alert.key}",
                    f"rule {alert.rule}: {alert.reason}",
                )
            )

    def fraud(self, rule: str, account: str, severity: str, reason: str, calls: list[str]) -> None:
        self.post(
            Message(
                "fraud",
                severity,
                f"sipguard: fraud alert {rule} on account {account}",
                f"{reason}\ncalls: {', '.join(calls[:10])}",
            )
        )

    def fleet_disconnected(self, peer: str, why: str) -> None:
        """The hook the fleet component calls when it loses its peers."""
        self.post(Message("fleet", "high", f"sipguard: fleet disconnected from {peer}", why))

    # ---- the sending task -----------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._digests())
            while True:
                message = await self._queue.get()
                await self._deliver(message)

    async def _digests(self) -> None:
        while True:
            if self._digest_due is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            wait = self._digest_due - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self.post(self._take_digest())

    def _take_digest(self) -> Message:
        n, rules, addresses = self._bans, self._ban_rules, self._ban_addresses
        self._bans, self._ban_rules, self._ban_addresses = 0, Counter(), []
        self._digest_due = None
        by_rule = ", ".join(f"{rule} {count}" for rule, count in rules.most_common())
        more = f" and {n - len(addresses)} more" if n > len(addresses) else ""
        return Message(
            "ban",
            "medium",
            f"sipguard: {n} address{'es' if n != 1 else ''} banned",
            f"{n} bans in the last {self.config.digest_interval:g}s ({by_rule})\n"
            f"{', '.join(addresses)}{more}",
        )

    async def _deliver(self, message: Message) -> None:
        for route in self.config.routes:
            if not route.wants(message.kind, message.severity):
                continue
            delay = self.config.backoff
            for attempt in range(self.config.retries + 1):
                if attempt:
                    self.counts["retried"] += 1
                    await asyncio.sleep(delay)
                    delay = min(MAX_BACKOFF, delay * 2)
                try:
                    ok = await self._send(route, message)
                except Exception as exc:  # a broken plugin is a failed send, never a crash
                    log.warning("notification failed: %s", exc)
                    ok = False
                if ok:
                    self.counts["sent"] += 1
                    break
            else:
                self.counts["failed"] += 1
                log.warning("notification given up after retries: %s", message.title)
