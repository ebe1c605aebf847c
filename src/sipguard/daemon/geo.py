"""The geo stage: successful registrations/logins looked up at the edge (sipguard.geo) and
judged by the pure detector (detect/geofence.py); its alerts go through the daemon's policy like
the fraud stage's (Processing.alert), so the allow-list, profiles and escalation apply.

It observes the pipeline's events (Pipeline.on_event) and never blocks it: the alert is handed
to the event loop as a task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Alert, Event
from sipguard.core.events import Kind
from sipguard.daemon.build import config_file
from sipguard.daemon.logs import kv
from sipguard.daemon.processing import Processing
from sipguard.detect.geofence import GeoDetector
from sipguard.geo import GeoConfigError, GeoError, GeoLookup, parse_geo

log = logging.getLogger("sipguard.geo")
EventObserver = Callable[[Event], None]


class GeoStage:
    def __init__(
        self,
        lookup: GeoLookup,
        detector: GeoDetector,
        alert: Callable[[Alert], Coroutine[Any, Any, None]],
        then: EventObserver | None,
        lock: Callable[[tuple[str, str]], None] | None = None,
    ) -> None:
        self.lookup, self.detector, self._alert, self.then = lookup, detector, alert, then
        self._lock = lock  # Processing.locks.append (None in simulation: nothing is locked)
        self._tasks: set[asyncio.Task[None]] = set()
        self.alerts = 0

    def observe(self, event: Event) -> None:
        if self.then is not None:
            self.then(event)
        if event.kind is not Kind.AUTH_SUCCESS or event.ip is None or not event.account:
            return
        for alert in self.detector.feed(event, self.lookup.lookup(str(event.ip))):
            self.alerts += 1
            if self._lock is not None and alert.account and "lock" in alert.actions:
                self._lock((alert.account, alert.rule))
            task = asyncio.get_running_loop().create_task(self._alert(alert))
            self._tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._tasks.discard)


def build_geo(
    settings: Settings,
    alert: Callable[[Alert], Coroutine[Any, Any, None]],
    then: EventObserver | None,
    lock: Callable[[tuple[str, str]], None] | None = None,
) -> GeoStage | None:
    """The stage when [geo] is configured; a bad table or database raises (stops the start)."""
    file = settings.origins.get("geo") or config_file(settings)
    try:
        config = parse_geo(settings.geo)
        if config is None:
            return None
        for key in ("profile", "travel_profile"):
            name = getattr(config.rules, key)
            if name not in settings.profiles:
                raise GeoConfigError(f"geo.{key}", f"no profile named {name!r}")
        lookup = config.lookup(time.monotonic)
    except GeoConfigError as exc:
        raise ConfigError(file, exc.key, exc.reason) from None
    except GeoError as exc:
        raise ConfigError(file, "geo", str(exc)) from None
    except ImportError:
        raise ConfigError(file, "geo", "needs maxminddb (the geo extra)") from None
    stage = GeoStage(lookup, GeoDetector(config.rules), alert, then, lock)
    kv(log, logging.INFO, "geo lookups", source=stage.lookup.source)
    return stage


def geo_stage(
    settings: Settings, processing: Processing, simulate: bool, current: GeoStage | None
) -> GeoStage | None:
    """The stage for `settings`, chained to the observer the current one (if any) chains to;
    in simulation nothing is locked."""
    then = current.then if current is not None else processing.pipeline.on_event
    locks = None if simulate else processing.locks.append
    return build_geo(settings, processing.alert, then, locks)


def swap_geo(processing: Processing, old: GeoStage | None, new: GeoStage | None) -> None:
    """Put `new` in `old`'s place among the pipeline's event observers."""
    if new is old:
        return
    pipeline = processing.pipeline
    if new is not None:
        pipeline.on_event = new.observe
    elif old is not None:
        pipeline.on_event = old.then
