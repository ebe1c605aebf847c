"""The daemon's sources, each an `async def run_X(daemon)` the supervisor keeps running.

Log lines (files, journald) are awaited through `daemon.lines`, so a source's checkpoint never
gets ahead of enforcement. AMI and packet-sensor events go through the daemon's bounded event
queue (overflow is counted): AMI through the normalizer (a log line and its AMI twin count
once), sensor events straight to the engine. The AMI client also feeds the fraud watcher, whose
own source (`run_fraud`) runs its ticks, CDR files and baseline saves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sipguard.daemon.build import build_sensor_config

if TYPE_CHECKING:
    from sipguard.daemon.app import Daemon


class StoreCheckpoints:
    """The followers' CheckpointStore, backed by the SQLite store."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self, source: str) -> Any:
        return self.store.get_offset(source)

    def set(self, source: str, cp: Any) -> None:
        self.store.set_offset(source, cp)


async def run_logs(daemon: Daemon) -> None:
    from sipguard.sources.follow import FileFollower

    cfg = daemon.settings.sources.logs
    follower = FileFollower(
        cfg.paths,
        StoreCheckpoints(daemon.store),
        poll_interval=cfg.poll_interval,
        from_end_if_new=cfg.from_end_if_new,
    )
    daemon.source_objects["logs"] = follower
    await follower.run(daemon.lines)


async def run_journald(daemon: Daemon) -> None:
    from sipguard.sources.journald import JournaldSource

    identifier = daemon.settings.sources.journald.identifier
    source = JournaldSource(identifier, StoreCheckpoints(daemon.store))
    daemon.source_objects["journald"] = source
    await source.run(daemon.lines)


async def run_ami(daemon: Daemon) -> None:
    from sipguard.sources.ami import AmiClient, ami_security_events

    cfg = daemon.settings.sources.ami
    client = AmiClient(
        cfg.host,
        cfg.port,
        cfg.username,
        cfg.secret,
        auth=cfg.auth,
        events=cfg.events,
        keepalive=cfg.keepalive,
    )

    async def on_event(msg: Any) -> None:
        # one client, two consumers: the fraud watcher first (a hangup must not wait behind the
        # security-event queue), then the security events through the normalizer
        fraud = daemon.fraud
        if fraud is not None:
            fraud.on_event(msg)
        event = ami_security_events(msg)
        if event is not None:
            daemon.queue_event(event, direct=False)

    daemon.source_objects["ami"] = client
    await client.run(on_event)


async def run_sensor(daemon: Daemon) -> None:
    """The NFQUEUE packet sensor, when the config has a `[sensor]` table."""
    from sipguard.sensor.nfq import run_sensor as run_nfq

    config = build_sensor_config(daemon.settings)

    def ready(sensor: Any) -> None:
        daemon.source_objects["sensor"] = sensor

    await run_nfq(config, lambda e: daemon.queue_event(e, direct=True), on_ready=ready)


async def run_fraud(daemon: Daemon) -> None:
    """The toll-fraud watcher's timers and CDR files (its AMI events come through run_ami)."""
    if daemon.fraud is not None:
        await daemon.fraud.run()
