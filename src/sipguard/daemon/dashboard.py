"""Wires the dashboard (sipguard.web) to the daemon's components: `[web]` settings -> WebConfig,
the control commands as its only way to read and act (plus `ban_summary`, the overview's cheap
view of the active bans), the live counters as pipeline observers, failed logins as events for
the detection engine, every action recorded in the store, and the audit of the Asterisk
configuration for its Audit page."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Alert, Decision, Event
from sipguard.daemon.build import config_file
from sipguard.daemon.commands import Commands, decision_view
from sipguard.daemon.control import RequestError
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.processing import Processing, log_alert
from sipguard.store import Store
from sipguard.web import BanSummary, LiveStats, WebConfig, WebConfigError, WebServer

AUDIT_FRESH = 600.0  # seconds an audit result is shown before the next visit runs it again
# the dashboard runs Python in the event loop while the enforcer's I/O thread puts bans in the
# kernel; that thread waits for the GIL up to the switch interval (5 ms by default) whenever it
# wakes during dashboard work: 1 ms bounds what viewers can add to a ban (bench/web)
SWITCH_INTERVAL = 0.001


def web_config(settings: Settings) -> WebConfig:
    w = settings.web
    config = WebConfig(
        listen=w.listen,
        port=w.port,
        user=w.user,
        password_hash=w.password_hash,
        tls_cert=w.tls_cert,
        tls_key=w.tls_key,
        session_hours=w.session_hours,
        login_attempts=max(1, w.login_attempts),
    )
    try:
        config.check()
        config.ssl_context()  # unreadable certificate files stop the start, not the first visit
    except WebConfigError as exc:
        raise ConfigError(config_file(settings), exc.key, exc.reason) from None
    return config


class AuditCache:
    """The last `sipguard audit` of the configured Asterisk directory, re-run when stale."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._last: dict[str, Any] | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> dict[str, Any]:
        async with self._lock:
            now = time.time()
            if self._last is None or now - float(self._last["time"]) > AUDIT_FRESH:
                self._last = await asyncio.to_thread(self._run, now)
            return self._last

    def _run(self, now: float) -> dict[str, Any]:
        from sipguard.audit.report import score
        from sipguard.audit.writer import audit_dir

        if not Path(self.path).is_dir():
            return {
                "time": now,
                "path": self.path,
                "score": None,
                "findings": [],
                "error": f"{self.path}: not a directory",
            }
        _, findings = audit_dir(self.path)
        return {
            "time": now,
            "path": self.path,
            "score": score(findings),
            "findings": [f.as_dict() for f in findings],
        }


def build_dashboard(
    settings: Settings,
    commands: Commands,
    processing: Processing,
    enforcer: Enforcer,
    store: Store,
) -> WebServer | None:
    """The dashboard, or None when `[web] enabled` is off. A bad `[web]` table: ConfigError."""
    if not settings.web.enabled:
        return None
    config = web_config(settings)
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))
    live = LiveStats()
    pipeline = processing.pipeline
    # the observers already there (Processing's account locks, then metrics, notifications and
    # the log line: daemon/outputs.py) keep running; the dashboard's join them
    earlier_event, earlier_alert = pipeline.on_event, pipeline.on_alert

    def on_event(event: Event) -> None:
        if earlier_event is not None:
            earlier_event(event)
        live.on_event(event)

    def on_alert(alert: Alert, decision: Decision | None) -> None:
        if earlier_alert is not None:
            earlier_alert(alert, decision)
        else:
            log_alert(alert, decision)
        live.on_alert(alert, decision)

    pipeline.on_event = on_event
    pipeline.on_alert = on_alert

    def login_failed(event: Event) -> None:
        processing.queue_event(event, True)  # no log line repeats it: straight to detection

    async def record(who: str, action: str, target: str, result: str) -> None:
        await enforcer.io(store.record_action, time.time(), who, action, target, result)

    summary = BanSummary(decision_view)

    async def handle(cmd: str, args: dict[str, object]) -> object:
        """The control commands, and `ban_summary`: what the overview shows of the active bans,
        read each push from the same table `bans` lists (thousands of rows would cost the
        event loop that applies bans some milliseconds a second)."""
        if cmd == "ban_summary":
            return summary(enforcer.active.values(), time.time())
        return await commands.handle(cmd, args)

    audit = AuditCache(settings.web.asterisk_config) if settings.web.asterisk_config else None
    return WebServer(config, handle, (RequestError,), live, login_failed, record, audit)
