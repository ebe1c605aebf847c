"""The daemon's pipeline component: the pure `Pipeline` at its edge, with the wall clock, the
event queue, the enforcer it hands decisions to and the offence history it saves.

    LineBatch (awaited by the source) --+
    Event (queued: AMI, sensor) --------+--> Pipeline --Decision--> Enforcer --> kernel + store
    Alert (fraud) ----------------------+
    AMI event, CDR lines --> FraudComponent (the fraud stage) --Alert--^  (and hang-up / lock)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

from sipguard.core import Action, Alert, Decision, Event, Network
from sipguard.core.ami import AmiMessage
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.fraud import FraudComponent
from sipguard.daemon.logs import kv
from sipguard.detect import Engine, network_key
from sipguard.pipeline import Pipeline
from sipguard.policy import AllowList, Policy, Profile
from sipguard.sources import LineBatch
from sipguard.sources.ami import ami_security_events
from sipguard.store import Store

log = logging.getLogger("sipguard.pipeline")
SLICE_BYTES = 32 * 1024  # log data parsed between two chances to enforce (~150 Asterisk lines)


class AccountLocker(Protocol):
    async def lock(self, account: str, rule: str, calls: tuple[str, ...] = ()) -> bool: ...


def log_alert(alert: Alert, decision: Decision | None) -> None:
    """The pipeline's alert observer: bans are logged by the enforcer, the rest here."""
    if decision is None or decision.action is not Action.BAN:
        action = decision.action.value if decision is not None else "none"
        # an account under attack (no network to ban) is as loud as a ban: warning
        loud = decision is not None or alert.severity in ("high", "critical")
        kv(
            log,
            logging.WARNING if loud else logging.INFO,
            "alert",
            rule=alert.rule,
            key=alert.key,
            action=action,
            reason=alert.reason,
        )


class Processing:
    def __init__(
        self, pipeline: Pipeline, policy: Policy, enforcer: Enforcer, store: Store, queue_size: int
    ) -> None:
        self.pipeline = pipeline
        self.policy = policy  # the pipeline's decider, kept typed for its settings and history
        self.enforcer = enforcer
        self.store = store
        self.drops = 0
        # events from AMI (through the normalizer) and the packet sensor (straight to detection)
        self._events: asyncio.Queue[tuple[Event, bool]] = asyncio.Queue(maxsize=queue_size)
        self._dirty_offences: set[Network] = set()
        self.fraud: FraudComponent | None = None  # the fraud stage, when [daemon.fraud] is on
        # (account, rule) to lock through AMI, from profiles whose actions list "lock"
        # (Policy.lock); drained on the tick (bounded: a lock is idempotent, the newest matter)
        self.locks: deque[tuple[str, str]] = deque(maxlen=1000)
        pipeline.on_alert = self.observe

    def observe(self, alert: Alert, decision: Decision | None) -> None:
        """The pipeline's alert observer: the log line, and the account lock a profile asks."""
        log_alert(alert, decision)
        account = self.policy.lock(alert) if decision is None else None
        if account is not None:
            self.locks.append((account, alert.rule))

    # ---- settings ------------------------------------------------------------------------
    def reconfigure(self, engine: Engine, profiles: dict[str, Profile], simulate: bool) -> None:
        """A reload: new rules and profiles; normalizer state and offence history are kept."""
        self.pipeline.set_detector(engine)
        self.policy.reconfigure(profiles, simulate)

    def set_allowed(self, allowed: Sequence[Network]) -> None:
        self.policy.set_allowlist(AllowList(list(allowed)))

    # ---- input ---------------------------------------------------------------------------
    async def lines(self, batch: LineBatch) -> None:
        """A batch of whole log lines. Returns once its bans are in the kernel and the store,
        so the follower's checkpoint after this call never covers an unenforced line.

        A big batch (a burst, or catching up after a restart) is processed in slices, and each
        slice's bans go to the enforcer at once: the first attacker in a 1 MiB chunk is banned
        while the rest of the chunk is still being parsed."""
        data, line_no = batch.data, batch.first_line_no
        pending: list[asyncio.Future[None]] = []
        pos = 0
        while pos < len(data):
            end = data.rfind(b"\n", pos, pos + SLICE_BYTES) + 1 or len(data)
            if end <= pos:  # one line longer than a slice (the follower bounds lines anyway)
                end = data.find(b"\n", pos) + 1 or len(data)
            part = data[pos:end]
            decisions = self.pipeline.lines(part, batch.source, line_no, time.time())
            if decisions:
                pending.append(asyncio.ensure_future(self._enforce(decisions)))
                await asyncio.sleep(0)  # let the enforcer hand them to the I/O thread now
            line_no += part.count(b"\n")
            pos = end
        if pending:
            await asyncio.gather(*pending)

    def ami_event(self, msg: AmiMessage) -> None:
        """Every event of the daemon's one AMI client: its call events to the fraud stage first
        (synchronous: a hang-up must not wait behind the security events' queue), its security
        event through the queue to the normalizer."""
        if self.fraud is not None:
            self.fraud.ami_event(msg, time.time())
        event = ami_security_events(msg)
        if event is not None:
            self.queue_event(event, False)

    async def cdr_lines(self, batch: LineBatch) -> None:
        """Whole lines of a followed CDR file (Master.csv) to the fraud stage."""
        if self.fraud is not None:
            self.fraud.cdr_lines(batch)

    def queue_event(self, event: Event, direct: bool) -> None:
        try:
            self._events.put_nowait((event, direct))
        except asyncio.QueueFull:
            self.drops += 1  # counted, reported by `status`

    async def alert(self, alert: Alert) -> None:
        """An alert from outside the engine (fraud): policy (allow-list, escalation), kernel."""
        decisions = self.pipeline.alert(alert, time.time())
        if decisions:
            await self._enforce(decisions)

    async def event_worker(self) -> None:
        while True:
            event, direct = await self._events.get()
            try:
                now = time.time()
                pipeline = self.pipeline
                decisions = pipeline.direct(event, now) if direct else pipeline.event(event, now)
                if decisions:
                    await self._enforce(decisions)
            except Exception as exc:
                kv(log, logging.ERROR, "event processing failed", error=exc)

    async def tick(self, now: float) -> None:
        decisions = self.pipeline.tick(now)
        if decisions:
            await self._enforce(decisions)

    async def lock_accounts(self, actions: AccountLocker | None) -> None:
        """Accounts whose alert's profile lists "lock": the AMI lock (actions/ami.py)."""
        while self.locks:
            account, rule = self.locks.popleft()
            if actions is None:
                kv(log, logging.WARNING, "account lock needs AMI actions", account=account)
                continue
            await actions.lock(account, rule)

    def account(self, account: str, now: float) -> dict[str, object]:
        """What detection knows of an account, for `explain ACCOUNT`."""
        watch = self.pipeline.detector.accounts
        alert = watch.alert_for(account, now)
        key = f"account:{account}"
        return {
            "under_attack": alert.to_dict() if alert is not None else None,
            "alerts": [r for r in self.pipeline.recent if r["key"] == key][-20:],
        }

    async def _enforce(self, decisions: list[Decision]) -> None:
        done = await self.enforcer.ban(decisions)
        self._dirty_offences.update(d.network for d in done if d.origin == "local")

    # ---- persistence ---------------------------------------------------------------------
    async def save_offences(self) -> None:
        """Persist the escalation history of the networks banned since the last save. Runs on
        the tick (every minute) and at stop: a kill -9 loses at most a minute of escalation."""
        if not self._dirty_offences:
            return
        keys = {network_key(n) for n in self._dirty_offences}
        self._dirty_offences.clear()
        exported = self.policy.history.export()
        data = {k: list(exported[k]) for k in keys if k in exported}
        await self.enforcer.io(_save_offences, self.store, data)

    def status(self) -> dict[str, object]:
        p = self.pipeline
        return {
            "pipeline": dict(p.counts),
            "normalizer": p.normalizer.stats.as_dict(),
            "engine_keys": p.detector.state_size(),
            "engine": p.detector.stats.as_dict(),
            "queue": {"events_waiting": self._events.qsize(), "dropped": self.drops},
            "recent_alerts": list(p.recent)[-20:],
            "accounts_under_attack": [a.to_dict() for a in p.detector.accounts.alerts(time.time())],
        }


def _save_offences(store: Store, data: dict[str, list[float]]) -> None:
    for key, times in data.items():
        store.save_offences(key, times)
