"""The live fraud watcher: AMI events -> tracker -> engine -> actions, within a second.

The AMI client reads replies on the same loop that delivers events, so the event handler never
awaits an action: it spawns one task per hit (hang up first, then lock, then notify). A
`tick` every second checks the running cost of answered calls.
"""

from __future__ import annotations

import asyncio
import csv
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sipguard.actions.ami import AmiFraudActions
from sipguard.core.alerts import Alert
from sipguard.core.clock import Clock, SystemClock
from sipguard.fraud.cdr import CdrParser
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.live import LiveTracker
from sipguard.fraud.model import Hit
from sipguard.fraud.report import AlertBook, Incident
from sipguard.policy.decide import Policy

log = logging.getLogger(__name__)

Notify = Callable[[Incident], Awaitable[None] | None]
MAX_TASKS = 1000  # pending action tasks; beyond that hits are still recorded, not acted on


class FraudWatcher:
    def __init__(
        self,
        engine: FraudEngine,
        actions: AmiFraudActions | None = None,
        notify: Notify | None = None,
        on_alert: Callable[[Alert], object] | None = None,
        clock: Clock | None = None,
        gap: float = 3600.0,
        policy: Policy | None = None,
    ) -> None:
        self.engine = engine
        # what a hit's alert leads to for its account (the rule profile's actions; the
        # policy's simulation mode and allow-list apply)
        self.policy = policy if policy is not None else Policy()
        self.tracker = LiveTracker(engine)
        self.actions = actions
        self.notify = notify
        self.on_alert = on_alert  # the daemon's way in: alerts with a network become bans
        self.clock = clock or SystemClock()
        self.book = AlertBook(gap)
        self.hits: list[Hit] = []
        self.dropped_actions = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._parsers: dict[str, CdrParser] = {}

    def on_event(self, msg: Any) -> None:
        """The AmiClient's event handler (synchronous on purpose, see the module doc)."""
        hits = self.tracker.feed(msg.name, msg.get, self.clock.now())
        if hits:
            self.handle(hits)

    def handle(self, hits: list[Hit]) -> None:
        for hit in hits:
            self.hits.append(hit)
            if len(self.hits) > 10_000:
                del self.hits[:5_000]
            incident = self.book.add(hit)
            if len(self._tasks) >= MAX_TASKS:
                self.dropped_actions += 1
                continue
            task = asyncio.get_running_loop().create_task(self._act(hit, incident))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _act(self, hit: Hit, incident: Incident | None) -> None:
        try:
            alert = hit.to_alert()
            # hangup, lock; the AstDB lock value and the action record name the detector
            decision = self.policy.account_decision(replace(alert, rule=hit.rule), hit.time)
            if self.actions is not None and decision is not None:
                await self.actions.carry_out(decision, hit.calls)
            if "ban" in hit.actions and hit.ip and self.on_alert is not None:
                self.on_alert(alert)
            if incident is not None and self.notify is not None:
                result = self.notify(incident)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("fraud action for %s/%s failed", hit.rule, hit.account)

    async def tick_loop(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            hits = self.engine.tick(self.clock.now())
            if hits:
                self.handle(hits)
            self.engine.expire(self.clock.now())

    async def drain(self) -> None:
        """Wait for the actions already started (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def on_cdr_batch(self, batch: Any) -> None:
        """A follower's batch of whole Master.csv lines (`sipguard.sources.base.LineBatch`).

        Calls the AMI path already tracked live are skipped by uniqueid, so a call is not
        counted twice when both sources are on.
        """
        parser = self._parsers.get(batch.source)
        if parser is None:
            parser = self.engine.cdr_parser(batch.source)
            self._parsers[batch.source] = parser
        text = batch.data.decode("utf-8", "replace").splitlines(keepends=True)
        seen = self.tracker.seen_uids
        records = parser.records(csv.reader(text), batch.first_line_no)
        hits = self.engine.check((r for r in records if r[8] not in seen), batch.source)
        if hits:
            self.handle(hits)

    async def follow_cdr(self, paths: list[str], checkpoints: Any = None) -> None:
        """Tail CDR files (rotation and restarts handled by the FileFollower)."""
        from sipguard.sources.base import MemoryCheckpointStore
        from sipguard.sources.follow import FileFollower

        follower = FileFollower(paths, checkpoints or MemoryCheckpointStore())

        async def emit(batch: Any) -> None:
            self.on_cdr_batch(batch)

        await follower.run(emit)

    async def run(self, client: Any = None, cdr_paths: list[str] | None = None) -> None:
        """Run against an AmiClient and/or CDR files until cancelled."""
        async with asyncio.TaskGroup() as tg:
            if client is not None:
                tg.create_task(client.run(self.on_event))
            if cdr_paths:
                tg.create_task(self.follow_cdr(cdr_paths))
            tg.create_task(self.tick_loop())


def log_notify(incident: Incident) -> None:
    """The default notifier: one log line per new incident."""
    log.warning(
        "fraud alert: account %s rule %s (%s): %s; calls %s",
        incident.account,
        incident.rule,
        incident.severity,
        incident.reason,
        ",".join(incident.calls[:5]),
    )


def apprise_notify(urls: list[str]) -> Notify:
    """A notifier sending each new incident through apprise (mail, chat, webhooks)."""
    import apprise

    ap = apprise.Apprise()
    for url in urls:
        ap.add(url)

    async def send(incident: Incident) -> None:
        title = f"sipguard: {incident.rule} on account {incident.account}"
        body = f"{incident.reason}\ncalls: {', '.join(incident.calls[:10])}"
        await asyncio.to_thread(ap.notify, body=body, title=title)

    return send


async def watch_ami(
    engine: FraudEngine,
    host: str,
    port: int,
    user: str,
    secret: str,
    dry_run: bool = False,
    cdr_paths: list[str] | None = None,
) -> None:
    """`sipguard fraud watch`: connect, watch, act (the daemon wires the same parts)."""
    from sipguard.sources.ami import AmiClient

    client = AmiClient(host, port, user, secret, events="security,system,call,cdr")
    watcher = FraudWatcher(engine, AmiFraudActions(client, dry_run=dry_run), notify=log_notify)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    await watcher.run(client, cdr_paths)
