"""The daemon's sources, each an `async def run_X(ctx)` the supervisor keeps running.

A runner sees only its `SourceContext`: the settings, the checkpoints, where lines and events go,
the fraud component (if any) and where to register what it runs (for `status`). Log lines
(files, journald) and CDR lines are awaited through `ctx.lines` / `ctx.cdr_lines`, so a source's
checkpoint never gets ahead of enforcement. AMI events go to `ctx.ami_event` (the processing
component: call events to the fraud stage at once, security events through the bounded queue
and the normalizer, so a log line and its AMI twin count once); packet-sensor events (read from
the sensor process under privsep) through the queue straight to detection. The fraud
component's own source (`run_fraud`) runs its running-cost ticks and baseline saves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sipguard.config.settings import Settings
from sipguard.core import Event
from sipguard.core.ami import AmiMessage
from sipguard.daemon.build import build_sensor_config
from sipguard.sources import Checkpoint, CheckpointStore, Emit
from sipguard.store import Store

if TYPE_CHECKING:
    from sipguard.daemon.fraud import FraudComponent


class StoreCheckpoints:
    """The followers' CheckpointStore, backed by the SQLite store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, source: str) -> Checkpoint | None:
        return self.store.get_offset(source)

    def set(self, source: str, cp: Checkpoint) -> None:
        self.store.set_offset(source, cp)


@dataclass(frozen=True)
class SourceView:
    """What `status` reads of a running source, built by its runner from the concrete object."""

    stats: Callable[[], Mapping[str, int]]
    #: extra status fields ({"inotify": True}, {"connected": False, "ami_error": "..."})
    details: Callable[[], dict[str, object]] = dict
    #: for a source that can run without reading anything (AMI before it connects)
    reading: Callable[[], bool] | None = None
    problem: Callable[[], str] = str  # why it does not read, "" when it does


@dataclass(frozen=True)
class SourceContext:
    settings: Settings
    checkpoints: CheckpointStore
    lines: Emit
    queue_event: Callable[[Event, bool], None]
    ami_event: Callable[[AmiMessage], None]
    cdr_lines: Emit
    fraud: Callable[[], FraudComponent | None]
    #: the running follower / client / sensor (the fraud actions go through the AMI client)
    register: Callable[[str, object, SourceView], None]


Runner = Callable[[SourceContext], Awaitable[None]]


async def run_logs(ctx: SourceContext) -> None:
    from sipguard.sources.follow import FileFollower

    cfg = ctx.settings.sources.logs
    follower = FileFollower(
        cfg.paths,
        ctx.checkpoints,
        poll_interval=cfg.poll_interval,
        from_end_if_new=cfg.from_end_if_new,
    )
    ctx.register(
        "logs",
        follower,
        SourceView(lambda: follower.stats, lambda: {"inotify": follower.inotify_active}),
    )
    await follower.run(ctx.lines)


async def run_journald(ctx: SourceContext) -> None:
    from sipguard.sources.journald import JournaldSource

    source = JournaldSource(ctx.settings.sources.journald.identifier, ctx.checkpoints)
    ctx.register("journald", source, SourceView(lambda: source.stats))
    await source.run(ctx.lines)


async def run_ami(ctx: SourceContext) -> None:
    from sipguard.sources.ami import AmiClient

    cfg = ctx.settings.sources.ami
    client = AmiClient(
        cfg.host,
        cfg.port,
        cfg.username,
        cfg.secret,
        auth=cfg.auth,
        events=cfg.events,
        keepalive=cfg.keepalive,
    )

    async def on_event(msg: AmiMessage) -> None:
        ctx.ami_event(msg)

    def problem() -> str:
        return str(client.last_error) if client.last_error is not None else ""

    def details() -> dict[str, object]:
        return {"connected": client.connected.is_set(), "ami_error": problem()}

    ctx.register(
        "ami", client, SourceView(lambda: client.stats, details, client.connected.is_set, problem)
    )
    await client.run(on_event)


async def run_sensor(ctx: SourceContext) -> None:
    """The NFQUEUE packet sensor, when the config has a `[sensor]` table. Under privilege
    separation it is a process of its own (it needs CAP_NET_ADMIN) and this reads what it
    sends (daemon/sensorproc.py); in a single process (`--no-privsep`) it runs here."""
    from sipguard.daemon.sensorproc import LinkReader, parser_link
    from sipguard.sensor.nfq import NfqSensor
    from sipguard.sensor.nfq import run_sensor as run_nfq

    link = parser_link()
    if link is not None:

        def linked(reader: LinkReader) -> None:
            view = SourceView(reader.stats, reader.details, problem=reader.problem)
            ctx.register("sensor", reader, view)

        await link.serve(ctx.settings.sensor, lambda e: ctx.queue_event(e, True), linked)
        return
    config = build_sensor_config(ctx.settings)
    if config is None:
        return

    def ready(sensor: NfqSensor) -> None:
        ctx.register("sensor", sensor, SourceView(sensor.stats))

    await run_nfq(config, lambda e: ctx.queue_event(e, True), on_ready=ready)


async def run_cdr(ctx: SourceContext) -> None:
    """The CDR files `[daemon.fraud] cdr` names, followed like the logs (rotation, restarts)."""
    from sipguard.sources.follow import FileFollower

    follower = FileFollower(list(ctx.settings.daemon.fraud.cdr), ctx.checkpoints)
    ctx.register("cdr", follower, SourceView(lambda: follower.stats))
    await follower.run(ctx.cdr_lines)


async def run_fraud(ctx: SourceContext) -> None:
    """The fraud component's timers: running-cost ticks, baseline saves (its AMI events come
    through run_ami, its CDR lines through run_cdr)."""
    fraud = ctx.fraud()
    if fraud is not None:
        await fraud.run()
