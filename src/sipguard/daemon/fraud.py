"""Toll-fraud protection inside the daemon: the fraud stage as a component the processing
component drives, on the daemon's own AMI connection and CDR follower.

    AMI source --each event--> Processing.ami_event --> FraudStage (call events -> alerts)
    CDR source --lines-------> Processing.cdr_lines --/      |
    alert -> Policy.account_decision -> AmiFraudActions (Hangup / DBPut over the SAME client)
    alert with an address and the `ban` action -> Processing.alert -> Policy -> Enforcer

The component outlives AMI reconnects and AMI source restarts: its actions go through
`CurrentAmi`, which forwards to whichever client the AMI source runs at that moment. A reload
hands it new settings through `reconfigure`, keeping what it learned. The learned baseline (the
countries each account calls, and the end of the learning period) is saved in the store
(store/baseline.py) every minute and at stop, and read at start, so a restart does not learn
again. An older sipguard kept it in `<state_dir>/fraud-baseline.json`: `import_baseline_file`
moves such a file into the store once, at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from sipguard.actions.ami import AmiFraudActions, AmiLike
from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Alert
from sipguard.core.ami import AmiMessage
from sipguard.daemon.logs import kv
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.stage import FraudAlert, FraudStage
from sipguard.policy import Policy
from sipguard.sources import LineBatch
from sipguard.sources.ami import AmiClient
from sipguard.store import Baseline, BaselineStore

log = logging.getLogger("sipguard.fraud")
BASELINE_FILE = "fraud-baseline.json"  # where an older sipguard kept it (imported once)
IMPORTED = ".imported"  # the suffix the file gets once read: it is never read again
MAX_BASELINE = 16 * 1024 * 1024  # a larger file is not ours: ignored (logged), learning restarts
SAVE_EVERY = 60.0
# AMI `Events:` values that include the `call` class (manager.c strings_to_mask)
_ALL_EVENTS = {"on", "yes", "true", "y", "t", "1", "all", ""}


def _file(settings: Settings) -> str:
    return settings.origins.get("fraud") or (settings.files[-1] if settings.files else "<defaults>")


def build_fraud_engine(settings: Settings) -> FraudEngine | None:
    """The fraud engine for `[fraud]` + `[daemon.fraud]`, or None when it is off.

    Raises ConfigError (one line: file, key, reason) for anything wrong, so a bad reload keeps the
    running watcher."""
    run = settings.daemon.fraud
    if not run.enabled:
        return None
    file = settings.files[-1] if settings.files else "<defaults>"
    ami = settings.sources.ami
    if not ami.enabled and not run.cdr:
        raise ConfigError(
            file, "daemon.fraud.enabled", "needs [sources.ami] enabled or daemon.fraud.cdr files"
        )
    if ami.enabled:
        labels = {p.strip().lower() for p in ami.events.split(",")}
        if not labels & (_ALL_EVENTS | {"call"}) and not ami.events.strip().isdigit():
            raise ConfigError(
                file, "sources.ami.events", "toll-fraud protection needs the 'call' event class"
            )
    if run.profile not in settings.profiles:
        raise ConfigError(file, "daemon.fraud.profile", f"no profile named {run.profile!r}")
    from sipguard.fraud.config import build_config
    from sipguard.fraud.scan import build_engine
    from sipguard.fraud.tables import load_hotlist, load_rates

    config = build_config(settings.fraud, _file(settings))
    rates = load_rates(run.rates) if run.rates else None
    hotlist = load_hotlist(run.hotlist) if run.hotlist else None
    return build_engine(config, rates, hotlist)


# ---- baseline persistence ---------------------------------------------------------------------
def baseline_state(engine: FraudEngine) -> Baseline:
    """What a restart needs to skip learning: the countries per account and the learning end."""
    until = engine.learn_until
    return {
        "accounts": engine.baseline(),
        # -inf (a baseline was loaded: learning is over) is not JSON; None = no call seen yet
        "learn_until": "done" if until is not None and math.isinf(until) else until,
    }


def read_baseline(path: Path) -> Baseline | None:
    """An older sipguard's baseline file, or None when there is none or it is unusable (logged,
    never fatal)."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BASELINE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        kv(log, logging.WARNING, "fraud baseline unreadable, learning again", error=exc)
        return None
    try:
        if len(raw) > MAX_BASELINE:
            raise ValueError(f"larger than {MAX_BASELINE} bytes")
        data = json.loads(raw.decode("utf-8"))
        accounts = data["accounts"]
        until = data.get("learn_until")
        if not isinstance(accounts, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) for c in v)
            for k, v in accounts.items()
        ):
            raise ValueError("accounts must map account -> list of country codes")
        if until is not None and until != "done" and not isinstance(until, int | float):
            raise ValueError("learn_until must be a number, 'done' or null")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        kv(log, logging.WARNING, "fraud baseline ignored, learning again", file=path, error=exc)
        return None
    return {"accounts": accounts, "learn_until": until}


def apply_baseline(engine: FraudEngine, state: Baseline) -> None:
    until = state["learn_until"]
    engine.load_baseline(state["accounts"])  # ends learning...
    if until != "done":
        # ...unless it was still under way when saved: it ends when it would have ended
        engine.learn_until = None if until is None else float(until)


def import_baseline_file(state_dir: Path, baseline: BaselineStore) -> bool:
    """Once, at start: `<state_dir>/fraud-baseline.json` (an older sipguard's) into the store,
    then renamed `fraud-baseline.json.imported` so it is never read again. A damaged or
    oversized file is a warning (the rules learn again), never a failed start; a baseline the
    store holds already wins over the file. True when the file's baseline was imported."""
    path = state_dir / BASELINE_FILE
    if not path.exists():
        return False
    state = read_baseline(path)  # logs why when unusable
    imported = False
    if state is not None:
        try:
            if baseline.load() is None:
                baseline.save(state)
                imported = True
        except sqlite3.Error as exc:
            kv(log, logging.ERROR, "fraud baseline not imported", file=path, error=exc)
            return False  # the file stays: the next start tries again
    done = path.with_name(path.name + IMPORTED)
    try:
        os.replace(path, done)
    except OSError as exc:
        kv(log, logging.WARNING, "fraud baseline file not renamed", file=path, error=exc)
    accounts = len(state["accounts"]) if state is not None else 0
    what = "imported into the store" if imported else "not imported"
    kv(log, logging.INFO, f"fraud baseline file {what}", file=path, renamed=done, accounts=accounts)
    return imported


# ---- the AMI client the actions go through ----------------------------------------------------
class CurrentAmi:
    """`AmiLike` for AmiFraudActions: the daemon's AMI client of the moment (one connection)."""

    def __init__(self, client: Callable[[], object | None]) -> None:
        self._get = client

    def _client(self) -> AmiClient:
        client = self._get()
        if not isinstance(client, AmiClient):
            raise ConnectionError("the daemon's AMI source is not running")
        return client

    async def hangup(self, channel: str, cause: int | None = None) -> bool:
        return await self._client().hangup(channel, cause)

    async def db_put(self, family: str, key: str, value: str) -> bool:
        return await self._client().db_put(family, key, value)

    async def action(self, name: str, **fields: str) -> AmiMessage:
        return await self._client().action(name, **fields)


Ban = Callable[[Alert], Awaitable[None]]  # an alert to the policy and the enforcer
Notify = Callable[[FraudAlert], Awaitable[None]]


class FraudNotifier(Protocol):
    """The daemon's notifier as the fraud component uses it (sipguard.notify.Notifier)."""

    def fraud(
        self, rule: str, account: str, severity: str, reason: str, calls: list[str]
    ) -> None: ...
Record = Callable[[dict[str, str | float]], None]  # `status`'s recent alerts
MAX_TASKS = 1000  # pending action tasks; beyond that alerts are still recorded, not acted on
TICK = 1.0  # running costs are checked every second


class FraudComponent:
    """The fraud stage with what carries its alerts out: the policy's account decisions to the
    AMI actions, bans to the enforcer (through `ban`), new incidents to the log, `status`'s
    recent alerts and apprise. Synchronous in (a hang-up never waits behind the security
    events' queue); each alert's actions run in a task of their own."""

    def __init__(
        self,
        settings: Settings,
        engine: FraudEngine,
        policy: Policy,
        ban: Ban,
        record: Record,
        ami: AmiLike | None,
        simulate: bool,
        baseline: BaselineStore | None = None,
    ) -> None:
        self.policy = policy  # the daemon's: its allow-list and simulation mode apply
        self.ban = ban
        self.record = record
        self.ami = ami
        self.baseline = baseline  # where the learned baseline is kept (None: nowhere)
        self.counts: Counter[str] = Counter()
        self.dropped_actions = 0
        # the daemon's notifier (routes, severity, retries), set by the composition root
        self.notifier: FraudNotifier | None = None
        self.on_alert: Callable[[FraudAlert], None] | None = None  # the fleet's range sharing
        self._tasks: set[asyncio.Task[None]] = set()
        self._saved: Baseline | None = None
        self._configure(settings, engine, simulate)
        state = self._load()
        if state is not None:
            apply_baseline(engine, state)
            self._saved = baseline_state(engine)
            kv(
                log,
                logging.INFO,
                "fraud baseline loaded",
                accounts=len(state["accounts"]),
                learning=state["learn_until"],
            )

    def _load(self) -> Baseline | None:
        if self.baseline is None:
            return None
        try:
            return self.baseline.load()
        except sqlite3.Error as exc:  # learning again costs time, not protection from the rest
            kv(log, logging.WARNING, "fraud baseline unreadable, learning again", error=exc)
            return None

    def _configure(self, settings: Settings, engine: FraudEngine, simulate: bool) -> None:
        self.run_settings = settings.daemon.fraud
        self.stage = FraudStage(engine)
        # simulate = report only: no hangup, no lock (the policy turns bans into reports)
        ami = self.ami if settings.sources.ami.enabled else None
        self.actions = AmiFraudActions(ami, dry_run=simulate) if ami is not None else None
        self.notify: Notify | None = None
        if self.run_settings.notify:
            self.notify = apprise_notify(self.run_settings.notify)

    def reconfigure(self, settings: Settings, engine: FraudEngine, simulate: bool) -> None:
        """New fraud settings (a reload): a new stage on the new engine, which keeps the
        baseline learned so far. Calls in progress right now are not tracked further."""
        apply_baseline(engine, baseline_state(self.stage.engine))
        self._configure(settings, engine, simulate)

    # ---- in ------------------------------------------------------------------------------
    def ami_event(self, msg: AmiMessage, now: float) -> None:
        self._guarded(lambda: self.stage.ami(msg.name, msg.get, now))

    def cdr_lines(self, batch: LineBatch) -> None:
        self._guarded(lambda: self.stage.cdr(batch.data, batch.source, batch.first_line_no))

    def tick(self, now: float) -> None:
        self._guarded(lambda: self.stage.tick(now))

    def _guarded(self, stage: Callable[[], list[FraudAlert]]) -> None:
        try:
            alerts = stage()
        except Exception as exc:  # a tracker bug must not stop the security events
            self.counts["errors"] += 1
            kv(log, logging.ERROR, "fraud stage failed on an event", error=exc)
            return
        for fa in alerts:
            if self.on_alert is not None:
                self.on_alert(fa)
            if len(self._tasks) >= MAX_TASKS:
                self.dropped_actions += 1
                continue
            task = asyncio.get_running_loop().create_task(self._act(fa))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ---- out -----------------------------------------------------------------------------
    async def _act(self, fa: FraudAlert) -> None:
        """Hang up, lock (the policy's decision), then ban, then notify."""
        alert = fa.alert
        try:
            # the AstDB lock value and the action record name the detector
            decision = self.policy.account_decision(replace(alert, rule=fa.detector), alert.time)
            if self.actions is not None and decision is not None:
                await self.actions.carry_out(decision, fa.calls)
            if alert.network is not None:
                self.counts["ban_alerts"] += 1
                await self.ban(replace(alert, profile=self.run_settings.profile))
            if fa.opens:
                await self._incident(fa)
        except Exception as exc:
            kv(log, logging.ERROR, "fraud action failed", rule=alert.rule, error=exc)

    async def _incident(self, fa: FraudAlert) -> None:
        """A new incident (alerts of one rule on one account, grouped): logged, shown in
        status, and sent through apprise when configured."""
        alert = fa.alert
        self.counts["incidents"] += 1
        log_notify(fa)
        self.record(
            {
                "time": alert.time,
                "rule": alert.rule,
                "key": alert.key,
                "reason": f"{alert.reason}; calls {','.join(fa.calls[:5])}",
                "action": "alert",
            }
        )
        if self.notifier is not None:  # the daemon's notifier: routes, severity, retries
            account = alert.key.removeprefix("account:")
            self.notifier.fraud(alert.rule, account, alert.severity, alert.reason, list(fa.calls))
        if self.notify is not None:
            try:
                await self.notify(fa)
            except Exception as exc:
                self.counts["notify_errors"] += 1
                kv(log, logging.ERROR, "fraud notification failed", error=exc)

    # ---- running -------------------------------------------------------------------------
    async def run(self) -> None:
        """The supervised "fraud" source: running-cost ticks every second, baseline saves
        every minute (the wall clock is here, at the edge; the stage is handed the time)."""
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            self.tick(time.time())
            if time.monotonic() - last_save >= SAVE_EVERY:
                last_save = time.monotonic()
                await self.save()

    async def save(self) -> bool:
        """Persist the baseline if it changed since the last save."""
        state = baseline_state(self.stage.engine)
        if state == self._saved or self.baseline is None:
            return False
        try:
            await asyncio.to_thread(self.baseline.save, state)
        except sqlite3.Error as exc:
            self.counts["save_errors"] += 1
            kv(log, logging.ERROR, "fraud baseline not saved", error=exc)
            return False
        self._saved = state
        return True

    async def drain(self) -> None:
        """Wait for the actions already started (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """At stop: let started actions finish (bounded), save the baseline."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2.0)
        await self.save()

    def status(self) -> dict[str, object]:
        taken: Counter[str] = Counter()
        locked: list[str] = []
        if self.actions is not None:
            for t in self.actions.taken:
                taken[f"{t.action}_{'ok' if t.ok else 'failed'}"] += 1
            locked = sorted(self.actions.locked)[:50]
        engine = self.stage.engine
        until = engine.learn_until
        return {
            "enabled": True,
            "ami": self.actions is not None,
            "cdr": list(self.run_settings.cdr),
            "tracker": dict(self.stage.tracker.counters),
            "hits": dict(self.stage.hits_by_rule),
            "actions": dict(taken),
            "locked": locked,
            "dropped_actions": self.dropped_actions,
            "accounts": len(engine.accounts),
            "learning_until": None if until is None or math.isinf(until) else until,
            **dict(self.counts),
        }


def log_notify(fa: FraudAlert) -> None:
    """One log line per new incident."""
    a = fa.alert
    log.warning(
        "fraud alert: account %s rule %s (%s): %s; calls %s",
        a.account,
        fa.detector,
        a.severity,
        a.reason,
        ",".join(fa.calls[:5]),
    )


def apprise_notify(urls: list[str]) -> Notify:
    """A notifier sending each new incident through apprise (mail, chat, webhooks)."""
    import apprise

    ap = apprise.Apprise()
    for url in urls:
        ap.add(url)

    async def send(fa: FraudAlert) -> None:
        title = f"sipguard: {fa.detector} on account {fa.alert.account}"
        body = f"{fa.alert.reason}\ncalls: {', '.join(fa.calls[:10])}"
        await asyncio.to_thread(ap.notify, body=body, title=title)

    return send
