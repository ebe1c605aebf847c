"""`sipguard run`: the composition root. Builds each component once, wires them, runs them in
one asyncio TaskGroup:

    Sources (supervised) --LineBatch/Event--> Processing (the pure Pipeline) --Decision-->
    Enforcer --> kernel + Store          ControlServer -> Commands (status, bans, allow, ...)
    ticker: normalizer/engine time-outs, expiry, offence saves, store pruning

Log batches are processed before the follower saves its offset (the follower awaits `lines`), so
a restart neither misses nor double-counts a line. AMI events go through a bounded queue whose
overflow is counted. SIGHUP reloads (a bad file keeps the running configuration), handing each
component its new settings through its own method; SIGTERM and SIGINT stop cleanly and leave the
bans in the kernel.

`sipguard fraud watch` is this Daemon too, built from `calls_only` settings (daemon/watch.py):
no control socket (`control_socket = ""`), no database on disk (`:memory:`, so no state dir),
a dry-run firewall, and its fraud bans handed to `fraud_ban` (the running daemon's socket).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from sipguard import __version__
from sipguard.actions.ami import AmiFraudActions
from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings, load_settings
from sipguard.core import Network
from sipguard.daemon.allow import AllowListing
from sipguard.daemon.build import (
    build_engine,
    build_firewall,
    build_pipeline,
    build_policy,
    build_profiles,
    build_rules,
    build_sensor_config,
    config_file,
)
from sipguard.daemon.commands import Commands, Report
from sipguard.daemon.control import ControlServer
from sipguard.daemon.dashboard import build_dashboard, web_config
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.feeds import Feeds, build_feeds, read_key
from sipguard.daemon.fleet import FleetRuntime, build_fleet
from sipguard.daemon.fraud import (
    Ban,
    CurrentAmi,
    FraudComponent,
    build_fraud_engine,
    import_baseline_file,
)
from sipguard.daemon.fraudranges import RangeShare
from sipguard.daemon.geo import geo_stage, swap_geo
from sipguard.daemon.logs import kv
from sipguard.daemon.outputs import Outputs, metrics_listen, notify_config
from sipguard.daemon.processing import Processing
from sipguard.daemon.runners import SourceContext, StoreCheckpoints
from sipguard.daemon.sources import Sources, changed, nothing_watched
from sipguard.feeds.config import FeedConfig
from sipguard.fraud.engine import FraudEngine
from sipguard.notify import Notifier
from sipguard.store import BaselineStore, Store, private_dir
from sipguard.web import WebServer

log = logging.getLogger("sipguard.daemon")


class Daemon:
    def __init__(
        self,
        settings: Settings,
        config_path: str | None = None,
        dry_run: bool = False,
        simulate: bool = False,
        netns: str | None = None,
        firewall: object | None = None,
        load: Callable[[], Settings] | None = None,
        fraud_engine: Callable[[Settings], FraudEngine | None] = build_fraud_engine,
        fraud_ban: Ban | None = None,
    ) -> None:
        self.settings = settings
        self.firewall = firewall  # the enforcer process's client (privsep); None: build one
        # what a reload reads, and how it makes the fraud engine (`fraud watch`: from its flags)
        self._load = load or (lambda: load_settings(config_path))
        self._fraud_engine = fraud_engine
        # where a fraud alert's ban goes: None = this daemon's policy and enforcer
        self.fraud_ban = fraud_ban
        self.config_path = config_path
        self.dry_run = dry_run
        self.cli_simulate = simulate  # --simulate wins over the file, across reloads
        self.simulate = simulate or settings.daemon.simulate
        self.netns = netns
        self.started = time.time()
        self.reloads = {"ok": 0, "failed": 0}
        self.last_reload_error = ""
        self._stop = asyncio.Event()
        self._background: set[asyncio.Future[Report]] = set()
        self.sources = Sources(self._source_context)
        self.fleet: FleetRuntime | None = None  # decisions shared over Redis, when [fleet] is on
        self.ranges: RangeShare | None = None  # fraud number ranges shared over the fleet
        self.web: WebServer | None = None  # the dashboard, when [web] is enabled
        self._ami_actions: AmiFraudActions | None = None  # account locks without fraud

    @property
    def notifier(self) -> Notifier | None:
        return self.outputs.notifier

    # ---- wiring --------------------------------------------------------------------------
    def _source_context(self, settings: Settings) -> SourceContext:
        return SourceContext(
            settings=settings,
            checkpoints=StoreCheckpoints(self.store),
            lines=self.processing.lines,
            queue_event=self.processing.queue_event,
            ami_event=self.processing.ami_event,
            cdr_lines=self.processing.cdr_lines,
            fraud=lambda: self.processing.fraud,
            register=self.sources.register,
        )

    async def _build(self) -> None:
        s = self.settings
        on_disk = s.database != ":memory:"  # `fraud watch`: nothing on disk, no state dir
        if on_disk:
            private_dir(Path(s.daemon.state_dir))  # 0750, tightened if looser: the evidence
        firewall = self.firewall or build_firewall(s, self.dry_run, self.netns)
        self.outputs = Outputs(s)  # metrics and notifications: a bad [notify] stops the start
        self.enforcer = Enforcer(firewall, None, [])
        self.feeds = Feeds(self.enforcer, lambda: self.enforcer.allowed)
        self.enforcer.latency = self.outputs.latency
        self.enforcer.on_banned.append(self.outputs.on_banned)
        self.store = await self.enforcer.io(Store.open, s.database)
        self.enforcer.store = self.store
        self.baseline = BaselineStore(self.store)  # the fraud baseline survives a restart
        if on_disk:
            await self.enforcer.io(import_baseline_file, Path(s.daemon.state_dir), self.baseline)
        self.allow = AllowListing(s.allow, self.store, self.enforcer.io, self._set_allowed)
        allowed = await self.allow.build()
        offences = await self.enforcer.io(self.store.load_offences)
        policy = build_policy(s, allowed, self.simulate, offences)
        # Processing observes its alerts (account locks), then metrics and notifications do
        pipeline = build_pipeline(s, policy, on_alert=self.outputs.on_alert)
        pipeline.on_event = self.outputs.tally.event
        self.processing = Processing(
            pipeline, policy, self.enforcer, self.store, s.daemon.queue_size
        )
        await self.allow.set(s.allow, allowed)
        build_sensor_config(s)  # a bad [sensor] table stops the start, like any config error
        fraud_engine = self._fraud_engine(s)  # and so does a bad [fraud] / [daemon.fraud]
        if fraud_engine is not None:
            self.processing.fraud = self._fraud(s, fraud_engine)
        self._feed_configs = self._feed_settings(s)  # a bad [[feeds]] stops the start
        self.fleet = await build_fleet(s, self.enforcer, lambda: self.processing.policy.allowlist)
        if self.fleet is not None:
            self.ranges = RangeShare(self.fleet, lambda: self.processing.fraud)
            self.ranges.link()
        # [geo]: successful registrations judged by where they come from (a bad table stops it)
        self.geo = geo_stage(s, self.processing, self.simulate, None)
        swap_geo(self.processing, None, self.geo)

    def _fraud(self, settings: Settings, engine: FraudEngine) -> FraudComponent:
        """The fraud stage's component: the daemon's policy decides, its one AMI client acts."""
        p = self.processing
        ami = CurrentAmi(lambda: self.sources.objects.get("ami"))
        ban, recent = self.fraud_ban or p.alert, p.pipeline.recent.append
        fraud = FraudComponent(
            settings, engine, p.policy, ban, recent, ami, self.simulate, self.baseline
        )
        fraud.notifier = self.outputs.notifier
        return fraud

    def _locker(self) -> AmiFraudActions | None:
        """Who locks accounts for a profile's "lock" action: the fraud component's AMI actions
        when it runs (one record of what was done), else the daemon's own AMI connection."""
        fraud = self.processing.fraud
        if fraud is not None and fraud.actions is not None:
            return fraud.actions
        if not self.settings.sources.ami.enabled:
            return None
        if self._ami_actions is None:
            ami = CurrentAmi(lambda: self.sources.objects.get("ami"))
            self._ami_actions = AmiFraudActions(ami, dry_run=self.simulate)
        return self._ami_actions

    def _feed_settings(self, s: Settings) -> tuple[list[FeedConfig], dict[str, str]]:
        configs = build_feeds(s)
        file = s.origins.get("feeds") or config_file(s)
        return configs, {c.name: read_key(c, file) for c in configs if c.enabled}

    async def _set_allowed(self, allowed: list[Network]) -> list[Network]:
        self.processing.set_allowed(allowed)
        lifted = await self.enforcer.set_allowed(allowed)
        self.feeds.allow_changed()
        return lifted

    # ---- start / stop --------------------------------------------------------------------
    async def run(self) -> int:
        s = self.settings
        self.control = ControlServer(s.daemon.control_socket, self._handle, s.daemon.socket_group)
        if s.daemon.control_socket:  # "" (`fraud watch`): the running daemon's is the one
            await self.control.check_free()
        if s.web.enabled:
            web_config(s)  # a dashboard without its password (or certificate) never starts
        await self._build()
        self.commands = Commands(
            self.enforcer,
            self.store,
            self.allow,
            self.status,
            self.reload,
            self.feeds,
            self.processing.account,
        )
        # the dashboard; more routes (e.g. /metrics) join with self.web.add_route(...) here
        self.web = build_dashboard(s, self.commands, self.processing, self.enforcer, self.store)
        await self.enforcer.start(time.time())
        await self.feeds.configure(*self._feed_configs)
        await self.outputs.start(self.status, lambda: self.enforcer.active.values())
        if s.daemon.control_socket:
            await self.control.start()
        if self.web is not None:
            await self.web.start()
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
            allow=len(self.allow.networks),
            socket=s.daemon.control_socket,
            fraud=self.processing.fraud is not None,
            fleet=self.fleet.cfg.node if self.fleet is not None else "off",
            web=f"{s.web.listen}:{self.web.port}" if self.web is not None else "off",
        )
        try:
            async with asyncio.TaskGroup() as tg:
                self.sources.attach(tg)
                workers = [
                    tg.create_task(self.enforcer.run()),
                    tg.create_task(self._ticker()),
                    tg.create_task(self.processing.event_worker()),
                    tg.create_task(self.feeds.run()),
                    tg.create_task(
                        self.outputs.run(
                            self._log_patterns, self._ami_connected, self._errors, self._fleet_up
                        )
                    ),
                ]
                if self.fleet is not None:
                    workers.append(tg.create_task(self.fleet.run()))
                self.sources.apply(s, self.processing.fraud is not None)
                tg.create_task(self._announce_watch())
                await self._stop.wait()
                for t in workers:
                    t.cancel()
                self.sources.cancel_all()
        finally:
            self.sources.attach(None)
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if s.daemon.control_socket:
                await self.control.close()
            await self.outputs.close()
            if self.web is not None:
                await self.web.close()
            if self.processing.fraud is not None:
                await self.processing.fraud.close()  # the learned baseline survives the restart
            await self.processing.save_offences()
            await self.enforcer.io(self.store.close)
            await self.enforcer.close()  # closes the firewall handle; the bans stay in the kernel
            kv(log, logging.INFO, "sipguard stopped", bans_left_in_kernel=len(self.enforcer.active))
        return 0

    def stop(self) -> None:
        self._stop.set()

    # ---- what the health checks read -----------------------------------------------------
    def _log_patterns(self) -> list[str]:
        logs = self.settings.sources.logs
        return list(logs.paths) if logs.enabled else []

    def _ami_connected(self) -> bool | None:
        if not self.settings.sources.ami.enabled:
            return None
        view = self.sources.views.get("ami")
        return view is not None and view.reading is not None and view.reading()

    def _errors(self) -> int:
        return self.enforcer.errors

    def _fleet_up(self) -> tuple[bool, str] | None:
        if self.fleet is None:
            return None
        state = self.fleet.status()
        return bool(state["connected"]), str(state["last_error"] or "")

    async def _handle(self, cmd: str, args: dict[str, object]) -> object:
        # the socket is checked free before the components exist; commands arrive after
        return await self.commands.handle(cmd, args)

    def _reload_soon(self) -> None:
        task = asyncio.ensure_future(self.reload())
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    async def _announce_watch(self) -> None:
        """Name what is watched once the sources had a moment to open their files, and warn
        loudly when nothing can be read."""
        await asyncio.sleep(0.5)
        for w in self.sources.watching(self.settings):
            kv(log, logging.INFO, "watching", source=w["source"], name=w["name"], state=w["state"])
        warning = nothing_watched(self.sources.watching(self.settings))
        if warning is not None:
            kv(log, logging.WARNING, warning)

    async def _ticker(self) -> None:
        last_prune = last_save = 0.0
        was_blind = False
        while True:
            await asyncio.sleep(self.settings.daemon.tick_interval)
            now = time.time()
            try:
                await self.processing.tick(now)
                await self.enforcer.retry()
                await self.enforcer.expire(now)
                await self.processing.lock_accounts(self._locker())
                if now - last_save > 60:
                    last_save = now
                    await self.processing.save_offences()
                    blind = nothing_watched(self.sources.watching(self.settings))
                    if blind is not None and not was_blind and now - self.started > 60:
                        kv(log, logging.WARNING, blind)
                    was_blind = blind is not None
                if now - last_prune > 3600:
                    last_prune = now
                    await self.enforcer.io(self.store.prune, now, self.settings.store.keep_days)
            except Exception as exc:
                kv(log, logging.ERROR, "tick failed", error=exc)

    # ---- status --------------------------------------------------------------------------
    def status(self) -> Report:
        s, now = self.settings, time.time()
        watch = self.sources.watching(s)
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(now - self.started, 1),
            "config": list(s.files) or ["<embedded defaults>"],
            "backend": "dry-run" if self.dry_run else s.firewall.backend,
            "simulate": self.simulate,
            "active_bans": len(self.enforcer.active),
            "allow_list": [str(n) for n in self.enforcer.allowed],
            "sources": self.sources.status(s),
            "watching": watch,
            "watch_warning": nothing_watched(watch),
            **self.processing.status(),
            "firewall": {
                "add": self.enforcer.add_timing.to_dict(),
                "remove": self.enforcer.remove_timing.to_dict(),
                "errors": self.enforcer.errors,
                "refused_allow_listed": self.enforcer.refused_allowed,
            },
            "reloads": dict(self.reloads, last_error=self.last_reload_error),
            "control": {"requests": self.control.requests, "refused": self.control.refused},
            "fraud": fraud.status() if (fraud := self.processing.fraud) else {"enabled": False},
            "feeds": self.feeds.status(),
            "fleet": self.fleet.status() if self.fleet is not None else {"enabled": False},
            **self.outputs.status(),
        }

    # ---- reload --------------------------------------------------------------------------
    async def reload(self) -> Report:
        """Re-read the configuration. Anything wrong: keep running as before, say why (one line)."""
        try:
            new = await asyncio.to_thread(self._load)
            allowed = await self.allow.build(new.allow)
            rules = build_rules(new)
            build_sensor_config(new)
            notify_config(new)
            if new.metrics.enabled:
                metrics_listen(new)
            simulate = self.cli_simulate or new.daemon.simulate
            profiles = build_profiles(new)
            old = self.settings
            fraud_changed = (
                old.fraud != new.fraud
                or old.daemon.fraud != new.daemon.fraud
                or old.sources.ami.enabled != new.sources.ami.enabled
                or self.simulate != simulate
            )
            fraud_engine = self._fraud_engine(new) if fraud_changed else None
            feeds = self._feed_settings(new)
            geo = self.geo
            if new.geo != self.settings.geo or simulate != self.simulate:
                geo = geo_stage(new, self.processing, simulate, self.geo)
        except (ConfigError, ValueError, OSError) as exc:
            self.reloads["failed"] += 1
            self.last_reload_error = str(exc)
            kv(log, logging.ERROR, "reload failed, keeping the running configuration", error=exc)
            return {"reloaded": False, "error": str(exc)}
        old, self.settings = self.settings, new
        self.simulate = simulate
        self.processing.reconfigure(build_engine(new, rules), profiles, simulate)
        lifted = await self.allow.set(new.allow, allowed)
        self.outputs.reconfigure(new)
        if fraud_changed:
            await self._replace_fraud(fraud_engine)
        await self.feeds.configure(*feeds)
        swap_geo(self.processing, self.geo, geo)  # a new stage learns the usual places anew
        self.geo = geo
        restart = changed(old, new) | ({"fraud"} if fraud_changed else set())
        self.sources.apply(new, self.processing.fraud is not None, restart)
        if old.fleet != new.fleet:
            kv(log, logging.WARNING, "fleet settings change on the next restart")
        if (
            old.firewall != new.firewall
            or old.daemon.control_socket != new.daemon.control_socket
            or old.web != new.web
            or old.metrics != new.metrics
        ):
            kv(
                log,
                logging.WARNING,
                "firewall/socket/web/metrics settings change on the next restart",
            )
        self.reloads["ok"] += 1
        kv(log, logging.INFO, "configuration reloaded", files=",".join(new.files), rules=len(rules))
        return {"reloaded": True, "rules": len(rules), "allow": len(allowed), "lifted": len(lifted)}

    async def _replace_fraud(self, engine: FraudEngine | None) -> None:
        """New fraud settings: the running component takes them through its own method
        (keeping its baseline); turned on, one is made (loading the saved baseline); turned
        off, it stops, saving its baseline. The sources' apply starts or stops its sources."""
        fraud = self.processing.fraud
        if fraud is not None and engine is not None:
            fraud.reconfigure(self.settings, engine, self.simulate)
        elif fraud is not None:
            await fraud.close()
            self.processing.fraud = None
        elif engine is not None:
            self.processing.fraud = self._fraud(self.settings, engine)
        if self.ranges is not None:  # the new engine keeps the fleet's ranges
            self.ranges.link()
        kv(log, logging.INFO, "fraud settings changed", fraud=engine is not None)
