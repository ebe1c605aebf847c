"""The daemon's sources component: which sources the settings ask for, ONE path that starts them
(at start and after a reload), their supervision state, and what they watch right now.

`watching()` answers "what does this daemon protect?": each log file followed or still missing,
AMI connected or not, journald, the packet sensor. A source whose task runs but that reads
nothing (no log file exists yet, AMI not connected) is "waiting", never "running".
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
from collections.abc import Callable, Collection
from functools import partial

from sipguard.config.settings import Settings
from sipguard.daemon.logs import kv
from sipguard.daemon.runners import (
    Runner,
    SourceContext,
    SourceView,
    run_ami,
    run_cdr,
    run_fraud,
    run_journald,
    run_logs,
    run_sensor,
)
from sipguard.daemon.sensorproc import sensor_process_running
from sipguard.daemon.supervise import SourceState, supervise

log = logging.getLogger("sipguard.sources")
WatchEntry = dict[str, str | bool | None]


def wanted(settings: Settings, fraud: bool) -> dict[str, Runner]:
    """The sources these settings ask for, by name."""
    src = settings.sources
    out: dict[str, Runner] = {}
    if src.logs.enabled and src.logs.paths:
        out["logs"] = run_logs
    if src.ami.enabled:
        out["ami"] = run_ami
    if src.journald.enabled:
        out["journald"] = run_journald
    # a running sensor process is read even when a reload dropped its table: it keeps
    # judging packets with the settings it started with until sipguard restarts
    if settings.sensor or sensor_process_running():
        out["sensor"] = run_sensor
    if fraud:
        out["fraud"] = run_fraud
        if settings.daemon.fraud.cdr:
            out["cdr"] = run_cdr
    return out


def changed(old: Settings, new: Settings) -> set[str]:
    """Sources whose settings differ (restarted by a reload; the others keep running)."""
    a, b = old.sources, new.sources
    differs = {
        "logs": a.logs != b.logs,
        "ami": a.ami != b.ami,
        "journald": a.journald != b.journald,
        "sensor": old.sensor != new.sensor,
        "cdr": old.daemon.fraud.cdr != new.daemon.fraud.cdr,
    }
    return {name for name, yes in differs.items() if yes}


class Sources:
    def __init__(self, make_context: Callable[[Settings], SourceContext]) -> None:
        self._make_context = make_context
        self.states: dict[str, SourceState] = {}
        self.objects: dict[str, object] = {}  # the running follower / AMI client / sensor
        self.views: dict[str, SourceView] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None

    def register(self, name: str, obj: object, view: SourceView) -> None:
        self.objects[name], self.views[name] = obj, view

    def attach(self, tg: asyncio.TaskGroup | None) -> None:
        """The task group sources run in (None at stop: nothing more is started)."""
        self._tg = tg

    def apply(self, settings: Settings, fraud: bool, restart: Collection[str] = ()) -> None:
        """THE start-up path: stop the sources in `restart` and those no longer wanted, start
        every wanted source that is not running. At start `restart` is empty."""
        want = wanted(settings, fraud)
        for name in list(self._tasks):
            task = self._tasks[name]
            if name in restart or name not in want or task.done():
                self._tasks.pop(name).cancel()
                self.states.pop(name, None)
                self.objects.pop(name, None)
                self.views.pop(name, None)
                if name in restart and name in want:
                    kv(log, logging.INFO, "source settings changed, restarting", source=name)
        if self._tg is None:
            return
        context = self._make_context(settings)
        for name, runner in want.items():
            if name not in self._tasks:
                state = self.states.setdefault(name, SourceState(name))
                run = partial(runner, context)
                self._tasks[name] = self._tg.create_task(
                    supervise(state, run), name=f"source-{name}"
                )

    def cancel_all(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    # ---- what is watched -----------------------------------------------------------------
    def watching(self, settings: Settings) -> list[WatchEntry]:
        out: list[WatchEntry] = []
        src = settings.sources
        logs_state = self.states.get("logs")
        logs_up = logs_state is not None and logs_state.running
        if src.logs.enabled:
            for pattern in src.logs.paths:
                present = _exists(pattern)
                state = (
                    "following"
                    if present and logs_up
                    else "missing, waiting"
                    if not present
                    else "not followed"
                )
                out.append(
                    {
                        "source": "log",
                        "name": pattern,
                        "state": state,
                        "active": present and logs_up,
                    }
                )
        if src.ami.enabled:
            view = self.views.get("ami")
            connected = view is not None and view.reading is not None and view.reading()
            err = view.problem() if view is not None else ""
            state = "connected" if connected else "not connected" + (f" ({err})" if err else "")
            out.append(
                {
                    "source": "ami",
                    "name": f"{src.ami.host}:{src.ami.port}",
                    "state": state,
                    "active": connected,
                }
            )
        if src.journald.enabled:
            up = self._up("journald")
            out.append(
                {
                    "source": "journald",
                    "name": src.journald.identifier,
                    "state": "reading" if up else "down",
                    "active": up,
                }
            )
        if settings.sensor or sensor_process_running():
            out.append(self._sensor_entry())
        return out

    def _sensor_entry(self) -> WatchEntry:
        view = self.views.get("sensor")
        problem = view.problem() if view is not None else ""
        up = self._up("sensor") and view is not None and not problem
        state = "running" if up else "starting" if self._up("sensor") and not problem else "down"
        if problem:
            state += f" ({problem})"
        elif view is not None and view.details().get("restart_needed"):
            state += " (restart sipguard to apply the changed [sensor] table)"
        return {"source": "sensor", "name": "nfqueue", "state": state, "active": up}

    def _up(self, name: str) -> bool:
        state = self.states.get(name)
        return state is not None and state.running

    def status(self, settings: Settings) -> dict[str, dict[str, object]]:
        """The supervisor's view of each source, with what the source itself counts; a task
        that runs but reads nothing is "waiting"."""
        watch = self.watching(settings)
        out: dict[str, dict[str, object]] = {}
        for name, st in self.states.items():
            entry: dict[str, object] = dict(st.to_dict())
            entry["state"] = _state(name, st.running, watch)
            view = self.views.get(name)
            if view is not None:
                entry["stats"] = dict(view.stats())
                entry.update(view.details())
            out[name] = entry
        return out


_KINDS = {"logs": "log", "ami": "ami", "journald": "journald", "sensor": "sensor"}


def _state(name: str, running: bool, watch: list[WatchEntry]) -> str:
    if not running:
        return "down"
    kind = _KINDS.get(name)
    mine = [w for w in watch if w["source"] == kind]
    if kind is None or not mine or any(w["active"] for w in mine):
        return "running"
    return "waiting"


def _exists(pattern: str) -> bool:
    if glob.has_magic(pattern):
        return bool(glob.glob(pattern))
    return os.path.exists(pattern)


def nothing_watched(watch: list[WatchEntry]) -> str | None:
    """The loud warning when no source can read anything, naming what it waits for."""
    if any(w["active"] for w in watch):
        return None
    if not watch:
        return (
            "no source is enabled: sipguard watches nothing (enable [sources.logs],"
            " [sources.ami], [sources.journald] or [sensor])"
        )
    logs = [str(w["name"]) for w in watch if w["source"] == "log"]
    others = [f"{w['source']} {w['name']} ({w['state']})" for w in watch if w["source"] != "log"]
    parts = []
    if logs:
        parts.append(f"no Asterisk log exists yet: waiting for {', '.join(logs)}")
    if others:
        parts.append("nothing read from " + ", ".join(others))
    return "; ".join(parts) + ": nothing is protected until one of them can be read"
