"""Toll-fraud protection inside the daemon: the FraudWatcher on the daemon's own AMI connection.

    AMI client (runners.run_ami) --each event--> security events -> normalizer -> engine
                                 \\-> FraudWatcher -> hits -> Hangup / DBPut over the SAME client
    hits with an address and the `ban` action -> Alert -> Policy -> Enforcer (allow-list applies)

The watcher outlives AMI reconnects and AMI source restarts: its actions go through `CurrentAmi`,
which forwards to whichever client the AMI source runs at that moment. The learned baseline (the
countries each account calls, and the end of the learning period) is saved in the state dir every
minute and at stop, so a restart does not learn again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.daemon.logs import kv

if TYPE_CHECKING:
    from sipguard.core import Alert
    from sipguard.daemon.app import Daemon

log = logging.getLogger("sipguard.fraud")
BASELINE_FILE = "fraud-baseline.json"
MAX_BASELINE = 16 * 1024 * 1024  # a larger file is not ours: ignored (logged), learning restarts
SAVE_EVERY = 60.0
# AMI `Events:` values that include the `call` class (manager.c strings_to_mask)
_ALL_EVENTS = {"on", "yes", "true", "y", "t", "1", "all", ""}


def _file(settings: Settings) -> str:
    return settings.origins.get("fraud") or (settings.files[-1] if settings.files else "<defaults>")


def build_fraud_engine(settings: Settings) -> Any:
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
def baseline_state(engine: Any) -> dict[str, Any]:
    """What a restart needs to skip learning: the countries per account and the learning end."""
    until = engine.learn_until
    return {
        "accounts": engine.baseline(),
        # -inf (a baseline was loaded: learning is over) is not JSON; None = no call seen yet
        "learn_until": "done" if until is not None and math.isinf(until) else until,
    }


def save_baseline(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (temp file + rename): a crash leaves the old or the new file, whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(state, f, separators=(",", ":"), sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none or it is unusable (logged, never fatal)."""
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


def apply_baseline(engine: Any, state: dict[str, Any]) -> None:
    until = state["learn_until"]
    engine.load_baseline(state["accounts"])  # ends learning...
    if until != "done":
        # ...unless it was still under way when saved: it ends when it would have ended
        engine.learn_until = None if until is None else float(until)


# ---- the AMI client the watcher acts through --------------------------------------------------
class CurrentAmi:
    """`AmiLike` for AmiFraudActions: the daemon's AMI client of the moment (one connection)."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    def _client(self) -> Any:
        client = self.d.source_objects.get("ami")
        if client is None:
            raise ConnectionError("the daemon's AMI source is not running")
        return client

    async def hangup(self, channel: str, cause: int | None = None) -> bool:
        ok: bool = await self._client().hangup(channel, cause)
        return ok

    async def db_put(self, family: str, key: str, value: str) -> bool:
        ok: bool = await self._client().db_put(family, key, value)
        return ok

    async def action(self, name: str, **fields: Any) -> Any:
        return await self._client().action(name, **fields)


class FraudRuntime:
    """One watcher with its engine, actions, notifier and counters (replaced on a reload that
    changes the fraud configuration)."""

    def __init__(self, daemon: Daemon, engine: Any) -> None:
        from sipguard.actions.ami import AmiFraudActions
        from sipguard.fraud.watch import FraudWatcher

        self.d = daemon
        s = daemon.settings
        self.run_settings = s.daemon.fraud
        self.path = Path(s.daemon.state_dir) / BASELINE_FILE
        self.engine = engine
        self.counts: Counter[str] = Counter()
        self.hits_by_rule: Counter[str] = Counter()
        ami = s.sources.ami.enabled
        # simulate = report only: no hangup, no lock, no ban (the policy turns bans into reports)
        self.actions = AmiFraudActions(CurrentAmi(daemon), dry_run=daemon.simulate) if ami else None
        self._apprise: Any = None
        if self.run_settings.notify:
            from sipguard.fraud.watch import apprise_notify

            self._apprise = apprise_notify(self.run_settings.notify)
        # hangup/lock are the daemon policy's decisions: its allow-list and simulation apply
        self.watcher = FraudWatcher(
            engine,
            self.actions,
            notify=self._notify,
            on_alert=self._on_alert,
            policy=daemon.processing.policy,
        )
        self._handle = self.watcher.handle
        self.watcher.handle = self._count_hits  # type: ignore[method-assign]
        self._pending: set[asyncio.Task[None]] = set()
        self._saved: dict[str, Any] | None = None
        state = read_baseline(self.path)
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

    # events in ----------------------------------------------------------------------------
    def on_event(self, msg: Any) -> None:
        """Every AMI event the daemon's client receives (synchronous: the hangup must not wait
        behind the security-event queue)."""
        try:
            self.watcher.on_event(msg)
        except Exception as exc:  # a tracker bug must not stop the security events
            self.counts["errors"] += 1
            kv(log, logging.ERROR, "fraud watcher failed on an event", error=exc)

    def _count_hits(self, hits: list[Any]) -> None:
        for hit in hits:
            self.hits_by_rule[hit.rule] += 1
        self._handle(hits)

    # alerts out ---------------------------------------------------------------------------
    async def _notify(self, incident: Any) -> None:
        """A new incident (hits of one rule on one account, grouped): logged, shown in status,
        and sent through apprise when configured."""
        from sipguard.fraud.watch import log_notify

        self.counts["incidents"] += 1
        log_notify(incident)
        self.d.pipeline.recent.append(
            {
                "time": incident.last,
                "rule": f"fraud.{incident.rule}",
                "key": f"account:{incident.account}",
                "reason": f"{incident.reason}; calls {','.join(incident.calls[:5])}",
                "action": "alert",
            }
        )
        if self._apprise is not None:
            try:
                sent = self._apprise(incident)
                if sent is not None:
                    await sent
            except Exception as exc:
                self.counts["notify_errors"] += 1
                kv(log, logging.ERROR, "fraud notification failed", error=exc)

    def _on_alert(self, alert: Alert) -> None:
        """A hit with an address and the `ban` action: through the daemon's policy and enforcer."""
        from dataclasses import replace

        self.counts["ban_alerts"] += 1
        alert = replace(alert, profile=self.run_settings.profile)
        task = asyncio.get_running_loop().create_task(self.d.external_alert(alert))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    # running ------------------------------------------------------------------------------
    async def run(self) -> None:
        """The supervised "fraud" source: running-cost ticks, CDR files, baseline saves."""
        from sipguard.daemon.runners import StoreCheckpoints

        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.watcher.tick_loop())
            tg.create_task(self._save_loop())
            if self.run_settings.cdr:
                checkpoints = StoreCheckpoints(self.d.store)
                tg.create_task(self.watcher.follow_cdr(list(self.run_settings.cdr), checkpoints))

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            await self.save()

    async def save(self) -> bool:
        """Persist the baseline if it changed since the last save."""
        state = baseline_state(self.engine)
        if state == self._saved:
            return False
        try:
            await asyncio.to_thread(save_baseline, self.path, state)
        except OSError as exc:
            self.counts["save_errors"] += 1
            kv(log, logging.ERROR, "fraud baseline not saved", file=self.path, error=exc)
            return False
        self._saved = state
        return True

    async def close(self) -> None:
        """At stop or replacement: let started actions finish (bounded), save the baseline."""
        pending = [*self._pending, *getattr(self.watcher, "_tasks", ())]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        await self.save()

    def status(self) -> dict[str, Any]:
        taken: Counter[str] = Counter()
        locked: list[str] = []
        if self.actions is not None:
            for t in self.actions.taken:
                taken[f"{t.action}_{'ok' if t.ok else 'failed'}"] += 1
            locked = sorted(self.actions.locked)[:50]
        until = self.engine.learn_until
        return {
            "enabled": True,
            "ami": self.actions is not None,
            "cdr": list(self.run_settings.cdr),
            "tracker": dict(self.watcher.tracker.counters),
            "hits": dict(self.hits_by_rule),
            "actions": dict(taken),
            "locked": locked,
            "dropped_actions": self.watcher.dropped_actions,
            "accounts": len(self.engine.accounts),
            "learning_until": None if until is None or math.isinf(until) else until,
            **dict(self.counts),
        }
