"""`sipguard run`: the daemon, one asyncio TaskGroup.

    sources (supervised) --LineBatch/Event--> Pipeline --Decision--> Enforcer --> kernel + store
    ticker: normalizer/engine time-outs, expiry       control socket: status, bans, ban, ...

Log batches are processed before the follower saves its offset (the follower awaits `emit`), so
a restart neither misses nor double-counts a line. AMI events go through a bounded queue whose
overflow is counted. SIGHUP reloads (a bad file keeps the running configuration); SIGTERM and
SIGINT stop cleanly and leave the bans in the kernel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings, load_settings
from sipguard.core import Alert, Decision, Event, Network
from sipguard.daemon.allow import build_allow_networks
from sipguard.daemon.build import (
    build_engine,
    build_firewall,
    build_pipeline,
    build_profiles,
    build_rules,
    build_sensor_config,
)
from sipguard.daemon.control import ControlServer
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.fraud import FraudRuntime, build_fraud_engine
from sipguard.daemon.logs import kv
from sipguard.daemon.runners import run_ami, run_fraud, run_journald, run_logs, run_sensor
from sipguard.daemon.supervise import SourceState, supervise

log = logging.getLogger("sipguard.daemon")
SLICE_BYTES = 32 * 1024  # log data parsed between two chances to enforce (~150 Asterisk lines)


class Daemon:
    def __init__(
        self,
        settings: Settings,
        config_path: str | None = None,
        dry_run: bool = False,
        simulate: bool = False,
        netns: str | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.dry_run = dry_run
        self.cli_simulate = simulate  # --simulate wins over the file, across reloads
        self.simulate = simulate or settings.daemon.simulate
        self.netns = netns
        self.started = time.time()
        self.sources: dict[str, SourceState] = {}
        self.source_objects: dict[str, Any] = {}  # the running follower / AMI client, for status
        self.drops = 0
        self.reloads = {"ok": 0, "failed": 0}
        self.last_reload_error = ""
        self._stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self._tg: asyncio.TaskGroup | None = None
        # events from AMI (through the normalizer) and the packet sensor (straight to the engine)
        self._events: asyncio.Queue[tuple[Event, bool]] = asyncio.Queue(
            maxsize=settings.daemon.queue_size
        )
        self._dirty_offences: set[Network] = set()
        # decisions and evidence are written on the enforcer's I/O thread, checkpoints on the
        # loop: the store is one connection behind a lock, safe to share
        self.store: Any = None
        self.fraud: FraudRuntime | None = None  # toll-fraud watcher, when [daemon.fraud] is on

    # ---- start / stop -------------------------------------------------------------------
    async def run(self) -> int:
        from sipguard.store import Store

        s = self.settings
        from sipguard.daemon.commands import Commands

        self.control = ControlServer(
            s.daemon.control_socket, Commands(self).handle, s.daemon.socket_group
        )
        await self.control.check_free()
        Path(s.daemon.state_dir).mkdir(parents=True, exist_ok=True)
        firewall = build_firewall(s, self.dry_run, self.netns)
        self.enforcer = Enforcer(firewall, None, [])
        self.store = await self.enforcer.io(Store.open, s.database)
        self.enforcer.store = self.store
        runtime_allow = await self.enforcer.io(self.store.allowlist)
        allowed = await asyncio.to_thread(
            build_allow_networks,
            s.allow.networks,
            s.allow.hosts,
            s.allow.own_addresses,
            runtime_allow,
        )
        self.enforcer.allowed = allowed
        offences = await self.enforcer.io(self.store.load_offences)
        self.pipeline = build_pipeline(s, allowed, self.simulate, offences)
        build_sensor_config(s)  # a bad [sensor] table stops the start, like any config error
        fraud_engine = build_fraud_engine(s)  # and so does a bad [fraud] / [daemon.fraud]
        if fraud_engine is not None:
            self.fraud = FraudRuntime(self, fraud_engine)
        now = time.time()
        await self.enforcer.start(now)
        await self.control.start()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        kv(
            log,
            logging.INFO,
            "sipguard running",
            pid=os.getpid(),
            config=",".join(s.files) or "defaults",
            backend="dry-run" if self.dry_run else s.firewall.backend,
            simulate=self.simulate,
            bans=len(self.enforcer.active),
            allow=len(allowed),
            socket=s.daemon.control_socket,
            fraud=self.fraud is not None,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                workers = [
                    tg.create_task(self.enforcer.run()),
                    tg.create_task(self._ticker()),
                    tg.create_task(self._event_worker()),
                ]
                self._start_sources()
                await self._stop.wait()
                for t in [*workers, *self._tasks.values()]:
                    t.cancel()
        finally:
            self._tg = None
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.control.close()
            if self.fraud is not None:
                await self.fraud.close()  # the learned baseline survives the restart
            await self._save_offences()
            await self.enforcer.io(self.store.close)
            await self.enforcer.close()  # closes the firewall handle; the bans stay in the kernel
            kv(log, logging.INFO, "sipguard stopped", bans_left_in_kernel=len(self.enforcer.active))
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _reload_soon(self) -> None:
        task = asyncio.ensure_future(self.reload())
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    # ---- sources ------------------------------------------------------------------------
    def _start_sources(self) -> None:
        src = self.settings.sources
        wanted: dict[str, Callable[[], Awaitable[None]]] = {}
        if src.logs.enabled and src.logs.paths:
            wanted["logs"] = partial(run_logs, self)
        if src.ami.enabled:
            wanted["ami"] = partial(run_ami, self)
        if src.journald.enabled:
            wanted["journald"] = partial(run_journald, self)
        if self.settings.sensor:
            wanted["sensor"] = partial(run_sensor, self)
        if self.fraud is not None:
            wanted["fraud"] = partial(run_fraud, self)
        for name, runner in wanted.items():
            self._spawn(name, runner)

    def _spawn(self, name: str, runner: Callable[[], Awaitable[None]]) -> None:
        assert self._tg is not None
        state = self.sources.setdefault(name, SourceState(name))
        self._tasks[name] = self._tg.create_task(supervise(state, runner), name=f"source-{name}")

    def _restart_sources(self, old: Settings) -> None:
        """After a reload: restart only the sources whose settings changed."""
        if self._tg is None:
            return
        for name in ("logs", "ami", "journald", "sensor"):
            if name == "sensor":
                if old.sensor == self.settings.sensor:
                    continue
            elif getattr(old.sources, name) == getattr(self.settings.sources, name):
                continue
            task = self._tasks.pop(name, None)
            if task is not None:
                task.cancel()
            self.sources.pop(name, None)
            kv(log, logging.INFO, "source settings changed, restarting", source=name)
        started = set(self._tasks)
        self._tasks = {n: t for n, t in self._tasks.items() if not t.done()}
        self._start_sources_missing(started)

    def _start_sources_missing(self, running: set[str]) -> None:
        src = self.settings.sources
        if "logs" not in running and src.logs.enabled and src.logs.paths:
            self._spawn("logs", partial(run_logs, self))
        if "ami" not in running and src.ami.enabled:
            self._spawn("ami", partial(run_ami, self))
        if "journald" not in running and src.journald.enabled:
            self._spawn("journald", partial(run_journald, self))
        if "sensor" not in running and self.settings.sensor:
            self._spawn("sensor", partial(run_sensor, self))

    def queue_event(self, event: Event, direct: bool) -> None:
        try:
            self._events.put_nowait((event, direct))
        except asyncio.QueueFull:
            self.drops += 1  # counted, reported by `status`

    # ---- processing ---------------------------------------------------------------------
    async def lines(self, batch: Any) -> None:
        """A batch of whole log lines. Returns once its bans are in the kernel and the store,
        so the follower's checkpoint after this call never covers an unenforced line.

        A big batch (a burst, or catching up after a restart) is processed in slices, and each
        slice's bans go to the enforcer at once: the first attacker in a 1 MiB chunk is banned
        while the rest of the chunk is still being parsed."""
        data, line_no, pending = batch.data, batch.first_line_no, []
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

    async def external_alert(self, alert: Alert) -> None:
        """An alert from the fraud watcher: policy (allow-list, escalation), then the kernel."""
        decisions = self.pipeline.alert(alert, time.time())
        if decisions:
            await self._enforce(decisions)

    async def event(self, event: Event) -> None:
        decisions = self.pipeline.event(event, time.time())
        if decisions:
            await self._enforce(decisions)

    async def _enforce(self, decisions: list[Decision]) -> None:
        done = await self.enforcer.ban(decisions)
        self._dirty_offences.update(d.network for d in done if d.origin == "local")

    async def _lock_accounts(self) -> None:
        """Accounts whose alert's profile says lock_account: the AMI lock (actions/ami.py)."""
        locks = self.pipeline.locks
        actions = self.fraud.actions if self.fraud is not None else None
        while locks:
            account, rule = locks.popleft()
            if actions is None:
                kv(log, logging.WARNING, "account lock needs AMI actions", account=account)
                continue
            await actions.lock(account, rule)

    async def _save_offences(self) -> None:
        """Persist the escalation history of the networks banned since the last save. Runs on
        the tick (every minute) and at stop: a kill -9 loses at most a minute of escalation."""
        if not self._dirty_offences:
            return
        from sipguard.detect import network_key

        keys = {network_key(n) for n in self._dirty_offences}
        self._dirty_offences.clear()
        policy: Any = self.pipeline.policy
        exported = policy.history.export()
        data = {k: exported[k] for k in keys if k in exported}
        await self.enforcer.io(_save_offences, self.store, data)

    async def _event_worker(self) -> None:
        while True:
            event, direct = await self._events.get()
            try:
                if direct:
                    decisions = self.pipeline.direct(event, time.time())
                    if decisions:
                        await self._enforce(decisions)
                else:
                    await self.event(event)
            except Exception as exc:
                kv(log, logging.ERROR, "event processing failed", error=exc)

    async def _ticker(self) -> None:
        last_prune = last_save = 0.0
        while True:
            await asyncio.sleep(self.settings.daemon.tick_interval)
            now = time.time()
            try:
                decisions = self.pipeline.tick(now)
                if decisions:
                    await self._enforce(decisions)
                await self.enforcer.retry()
                await self.enforcer.expire(now)
                await self._lock_accounts()
                if now - last_save > 60:
                    last_save = now
                    await self._save_offences()
                if now - last_prune > 3600:
                    last_prune = now
                    await self.enforcer.io(self.store.prune, now, self.settings.store.keep_days)
            except Exception as exc:
                kv(log, logging.ERROR, "tick failed", error=exc)

    # ---- reload -------------------------------------------------------------------------
    async def reload(self) -> dict[str, Any]:
        """Re-read the configuration. Anything wrong: keep running as before, say why (one line)."""
        try:
            new = await asyncio.to_thread(load_settings, self.config_path)
            runtime_allow = await self.enforcer.io(self.store.allowlist)
            allowed = await asyncio.to_thread(
                build_allow_networks,
                new.allow.networks,
                new.allow.hosts,
                new.allow.own_addresses,
                runtime_allow,
            )
            rules = build_rules(new)
            build_sensor_config(new)
            simulate = self.cli_simulate or new.daemon.simulate
            profiles = build_profiles(new)
            old = self.settings
            fraud_changed = (
                old.fraud != new.fraud
                or old.daemon.fraud != new.daemon.fraud
                or old.sources.ami.enabled != new.sources.ami.enabled
                or self.simulate != simulate
            )
            fraud_engine = build_fraud_engine(new) if fraud_changed else None
        except (ConfigError, ValueError, OSError) as exc:
            self.reloads["failed"] += 1
            self.last_reload_error = str(exc)
            kv(log, logging.ERROR, "reload failed, keeping the running configuration", error=exc)
            return {"reloaded": False, "error": str(exc)}
        from sipguard.policy import AllowList

        old, self.settings = self.settings, new
        self.simulate = simulate
        self.pipeline.engine = build_engine(new, rules)
        # the policy keeps its offence history and running bans; only its settings change
        policy: Any = self.pipeline.policy
        policy.profiles, policy.simulate = profiles, simulate
        policy.allowlist = AllowList(allowed)
        lifted = await self.enforcer.set_allowed(allowed)
        self._restart_sources(old)
        if fraud_changed:
            await self._restart_fraud(fraud_engine)
        if old.firewall != new.firewall or old.daemon.control_socket != new.daemon.control_socket:
            kv(log, logging.WARNING, "firewall/socket settings change on the next restart")
        self.reloads["ok"] += 1
        kv(log, logging.INFO, "configuration reloaded", files=",".join(new.files), rules=len(rules))
        return {"reloaded": True, "rules": len(rules), "allow": len(allowed), "lifted": len(lifted)}

    async def _restart_fraud(self, engine: Any) -> None:
        """New fraud settings: stop the watcher (saving its baseline), start one on the new
        engine, which loads that baseline. Calls in progress right now are not tracked further."""
        task = self._tasks.pop("fraud", None)
        if task is not None:
            task.cancel()
        self.sources.pop("fraud", None)
        if self.fraud is not None:
            await self.fraud.close()
        self.fraud = FraudRuntime(self, engine) if engine is not None else None
        if self.fraud is not None and self._tg is not None:
            self._spawn("fraud", partial(run_fraud, self))
        kv(log, logging.INFO, "fraud settings changed", fraud=self.fraud is not None)

    async def allow(self, networks: list[Network]) -> list[Network]:
        from sipguard.policy import AllowList

        runtime_allow = await self.enforcer.io(self.store.allowlist)
        s = self.settings
        allowed = await asyncio.to_thread(
            build_allow_networks,
            s.allow.networks,
            s.allow.hosts,
            s.allow.own_addresses,
            runtime_allow,
        )
        policy: Any = self.pipeline.policy
        policy.allowlist = AllowList(allowed)
        return await self.enforcer.set_allowed(allowed)


def _save_offences(store: Any, data: Any) -> None:
    if isinstance(data, dict):
        for key, times in data.items():
            store.save_offences(key, times)
