"""What the daemon tells the outside world besides the control socket: Prometheus metrics and
notifications. Built from the settings, fed through the observers the other components already
have (the pipeline's alert/event observers, the enforcer's ban observers), run as tasks in the
daemon's TaskGroup. Nothing here sits in front of detection: a slow scraper or a hanging mail
server costs the ban path nothing but a Counter increment and a `put_nowait`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Alert, Decision
from sipguard.daemon.build import config_file
from sipguard.daemon.logs import kv
from sipguard.daemon.processing import log_alert
from sipguard.metrics import DaemonCollector, Latency, MetricsServer, MetricsView, Tally, render
from sipguard.metrics import parse_listen as _parse_listen
from sipguard.notify import (
    HealthWatch,
    Notifier,
    NotifyConfig,
    Sender,
    apprise_sender,
    asterisk_running,
    log_sizes,
    parse_notify,
)

log = logging.getLogger("sipguard.outputs")
HEALTH_EVERY = 5.0  # seconds between the source/kernel health checks


def notify_config(settings: Settings) -> NotifyConfig:
    """The `[notify]` table, validated; ConfigError naming the file and the key."""
    try:
        return parse_notify(settings.notify)
    except ValueError as exc:
        key, _, reason = str(exc).partition(": ")
        file = settings.origins.get("notify") or config_file(settings)
        raise ConfigError(file, key, reason) from None


def metrics_listen(settings: Settings) -> tuple[str, int]:
    try:
        return _parse_listen(settings.metrics.listen)
    except ValueError as exc:
        raise ConfigError(config_file(settings), "metrics.listen", str(exc)) from None


class Outputs:
    def __init__(self, settings: Settings, sender: Sender | None = None) -> None:
        self.tally = Tally()
        self.latency = Latency()
        self.listen = metrics_listen(settings) if settings.metrics.enabled else None
        self.file = config_file(settings)  # named in a "cannot listen" error
        config = notify_config(settings)
        self.notifier: Notifier | None = None
        if config.routes:
            self.notifier = Notifier(config, sender or apprise_sender(config.routes))
        self.health = HealthWatch(config.log_silence)
        self.server: MetricsServer | None = None
        self.collector: DaemonCollector | None = None

    # ---- observers -----------------------------------------------------------------------
    def on_alert(self, alert: Alert, decision: Decision | None) -> None:
        """The pipeline's alert observer: the log line, the counts, the notifier."""
        log_alert(alert, decision)
        self.tally.alert(alert, decision)
        if self.notifier is not None:
            self.notifier.alert(alert, decision)

    def on_banned(self, decisions: list[Decision]) -> None:
        if self.notifier is not None:
            self.notifier.banned(decisions)

    def reconfigure(self, settings: Settings) -> None:
        """A reload: new routes and limits for a running notifier (adding the first route, or
        moving the metrics port, takes a restart)."""
        config = notify_config(settings)
        if self.notifier is not None:
            self.notifier.config = config
        self.health.log_silence = config.log_silence

    # ---- metrics -------------------------------------------------------------------------
    async def start(
        self, status: Callable[[], Mapping[str, Any]], active: Callable[[], Any]
    ) -> None:
        notifier = self.notifier
        view = MetricsView(
            status,
            active,
            self.tally,
            self.latency,
            notify=(lambda: notifier.counts) if notifier is not None else dict,
        )
        self.collector = DaemonCollector(view)
        if self.listen is not None:
            collector = self.collector
            self.server = MetricsServer(*self.listen, lambda: render(collector))
            try:
                await self.server.start()
            except OSError as exc:  # port taken, address not on this host: one line, no trace
                reason = f"cannot listen on {settings_listen(self.listen)}: {exc.strerror or exc}"
                raise ConfigError(self.file, "metrics.listen", reason) from None
            kv(
                log,
                logging.INFO,
                "metrics served",
                url=f"http://{self.listen[0]}:{self.server.port}/metrics",
            )

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    # ---- tasks ---------------------------------------------------------------------------
    async def run(
        self,
        log_patterns: Callable[[], list[str]],
        ami_connected: Callable[[], bool | None],
        kernel_errors: Callable[[], int],
        fleet: Callable[[], tuple[bool, str] | None] = lambda: None,
    ) -> None:
        """The notifier's sender and the health checks (nothing to do without a notifier)."""
        notifier = self.notifier
        if notifier is None:
            return
        async with asyncio.TaskGroup() as tg:
            tg.create_task(notifier.run())
            while True:
                await asyncio.sleep(HEALTH_EVERY)
                try:
                    sizes, running = await asyncio.to_thread(_probe, log_patterns())
                    for message in self.health.check(
                        time.monotonic(),
                        sizes,
                        running,
                        ami_connected(),
                        kernel_errors(),
                        fleet(),
                    ):
                        notifier.post(message)
                except Exception as exc:  # a check that fails must not end the notifier
                    kv(log, logging.ERROR, "health check failed", error=exc)

    def status(self) -> dict[str, object]:
        return {
            "metrics": (
                {"listen": f"{self.listen[0]}:{self.server.port}", "scrapes": self.server.scrapes}
                if self.listen is not None and self.server is not None
                else None
            ),
            "notify": dict(self.notifier.counts) if self.notifier is not None else None,
            "ban_latency_p99": self.latency.quantile(0.99),
        }


def settings_listen(listen: tuple[str, int]) -> str:
    host, port = listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _probe(patterns: list[str]) -> tuple[dict[str, int], bool]:
    """File sizes and the process table: I/O, so off the event loop."""
    return log_sizes(patterns), asterisk_running()
