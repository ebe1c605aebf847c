"""`sipguard fraud watch`: the Daemon (daemon/app.py) with only its call sources on.

There is one composition root: `watch_calls` builds `Daemon` itself, on `calls_only` settings,
so the AMI and CDR sources start through `Sources.apply`, the `FraudComponent` drives the fraud
stage, the policy decides hang-up and lock, and the one AMI client carries them out, exactly as
in `sipguard run`. What a PBX admin running it beside (or without) `sipguard run` gets:

- only call sources: AMI (its own login) and the `--cdr` files; no log files, journald or
  packet sensor, and the log rules are off (security events are the running daemon's job);
- nothing that binds a port or writes the kernel: no control socket (the running daemon's is
  the one), no dashboard, metrics, fleet or feeds, and a dry-run firewall. A fraud ban goes to
  `ban`, which `cli/fraud.py` points at the running daemon's control socket (that daemon
  applies its own allow-list; the watcher's policy has none, as before);
- nothing on disk: the store is `:memory:`. A `run` daemon on the same state dir must not share
  its database with a second writer of the same offsets and baseline rows (each would overwrite
  the other's), nor have its old `fraud-baseline.json` imported by somebody else; and `fraud
  watch` may run as any user, without a state dir. So, as before, a restart starts at each CDR
  file's end and learns the baseline again; the daemon's `[daemon.fraud]` keeps both.

SIGTERM/SIGINT stop it cleanly. Its settings come from the command line: a SIGHUP reload keeps
them (it never reads the daemon's files); restart the watcher to change them.
"""

from __future__ import annotations

from dataclasses import replace

from sipguard.config.rules import load_rules
from sipguard.config.settings import AllowSettings, Settings
from sipguard.daemon.app import Daemon
from sipguard.daemon.fraud import Ban
from sipguard.fraud.engine import FraudEngine

MEMORY = ":memory:"


def calls_only(settings: Settings) -> Settings:
    """These settings with the call sources (AMI, CDR files) and the fraud component on and
    everything else off: see the module's docstring for what and why."""
    src = replace(
        settings.sources,
        logs=replace(settings.sources.logs, enabled=False),
        journald=replace(settings.sources.journald, enabled=False),
        ami=replace(settings.sources.ami, enabled=True),
    )
    fraud = replace(settings.daemon.fraud, enabled=True)
    daemon = replace(settings.daemon, fraud=fraud, control_socket="")
    rules = {r.id: {**settings.rules.get(r.id, {}), "enabled": False} for r in load_rules()}
    return replace(
        settings,
        sources=src,
        sensor={},
        daemon=daemon,
        rules=rules,
        firewall=replace(settings.firewall, backend="dry-run"),
        allow=AllowSettings(own_addresses=False),
        store=replace(settings.store, path=MEMORY),
        metrics=replace(settings.metrics, enabled=False),
        fleet=replace(settings.fleet, enabled=False),
        web=replace(settings.web, enabled=False),
        feeds=[],
        geo={},
    )


def watcher(settings: Settings, engine: FraudEngine, ban: Ban, simulate: bool) -> Daemon:
    """The Daemon as a call watcher on `calls_only(settings)`, with `engine` as its fraud engine
    and `ban` where a fraud ban goes; `simulate`: hang-up and lock are reported, not sent. Its
    settings are the command line's, fixed: a SIGHUP reload keeps them (it never reads the
    daemon's files), a restart changes them."""
    watching = calls_only(settings)
    return Daemon(
        watching,
        simulate=simulate,
        load=lambda: watching,
        fraud_engine=lambda _settings: engine,
        fraud_ban=ban,
    )


async def watch_calls(settings: Settings, engine: FraudEngine, ban: Ban, simulate: bool) -> int:
    """Run the call watcher until SIGTERM or SIGINT."""
    return await watcher(settings, engine, ban, simulate).run()
