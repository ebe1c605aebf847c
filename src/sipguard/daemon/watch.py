"""`sipguard fraud watch`: the daemon's call sources and fraud component, nothing else.

The same parts as `sipguard run` with only call sources enabled (logs, journald and the packet
sensor off): the AMI and CDR sources start through `Sources.apply` (the one start-up path), the
`FraudComponent` drives the fraud stage and carries its alerts out (hang-up and lock over the
one AMI client). What differs is where a ban goes: this process holds no firewall, so `ban`
hands it to the running daemon (`cli/fraud.py`: over its control socket).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from sipguard.config.settings import Settings
from sipguard.core.ami import AmiMessage
from sipguard.core.events import Event
from sipguard.daemon.fraud import Ban, CurrentAmi, FraudComponent
from sipguard.daemon.runners import SourceContext
from sipguard.daemon.sources import Sources
from sipguard.fraud.engine import FraudEngine
from sipguard.policy import Policy
from sipguard.sources import LineBatch, MemoryCheckpointStore


def calls_only(settings: Settings) -> Settings:
    """These settings with every source but the call sources (AMI, CDR files) off."""
    src = replace(
        settings.sources,
        logs=replace(settings.sources.logs, enabled=False),
        journald=replace(settings.sources.journald, enabled=False),
        ami=replace(settings.sources.ami, enabled=True),
    )
    daemon = replace(settings.daemon, fraud=replace(settings.daemon.fraud, enabled=True))
    return replace(settings, sources=src, sensor={}, daemon=daemon)


async def watch_calls(settings: Settings, engine: FraudEngine, ban: Ban, simulate: bool) -> None:
    """Run until cancelled. The account decisions are a plain policy's (no allow-list: the
    daemon that receives the bans applies its own); `simulate`: the AMI actions are only
    recorded and logged, not sent."""
    settings = calls_only(settings)
    checkpoints = MemoryCheckpointStore()  # no state dir: a restart starts at each file's end

    def context(s: Settings) -> SourceContext:
        return SourceContext(
            settings=s,
            checkpoints=checkpoints,
            lines=_nothing,
            queue_event=_no_event,
            ami_event=ami_event,
            cdr_lines=cdr_lines,
            fraud=lambda: fraud,
            register=sources.register,
        )

    def ami_event(msg: AmiMessage) -> None:
        fraud.ami_event(msg, time.time())

    async def cdr_lines(batch: LineBatch) -> None:
        fraud.cdr_lines(batch)

    sources = Sources(context)
    ami = CurrentAmi(lambda: sources.objects.get("ami"))
    record = _no_record
    fraud = FraudComponent(
        settings, engine, Policy(), ban, record, ami, simulate, keep_baseline=False
    )
    try:
        async with asyncio.TaskGroup() as tg:
            sources.attach(tg)
            sources.apply(settings, True)
    finally:
        sources.attach(None)
        await fraud.close()


async def _nothing(batch: LineBatch) -> None:
    """No log source runs here."""


def _no_event(event: Event, direct: bool) -> None:
    """No security events: the daemon, if one runs, reads them."""


def _no_record(entry: dict[str, str | float]) -> None:
    """No `status` here: new incidents are logged."""
