"""`sipguard fraud watch` is the Daemon (issue 11): `daemon/watch.py` builds `daemon.app.Daemon`
on `calls_only` settings and runs it against the test AMI server (real wire protocol). A
satellite call is hung up and its account locked over the watcher's AMI login; a registration
from a forbidden country goes to the ban sink (the running daemon's socket in `fraud watch`),
not to a firewall; security events run no log rule; nothing is written to the state dir, no
control socket is bound. And the daemon (`run`) imports an old `fraud-baseline.json` into its
store at start, keeps the baseline there across a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from sipguard.config.settings import (
    AmiSettings,
    DaemonSettings,
    FraudRunSettings,
    Settings,
    SourcesSettings,
    load_settings,
)
from sipguard.core.alerts import Alert
from sipguard.daemon.app import Daemon
from sipguard.daemon.watch import calls_only, watcher
from sipguard.fraud.config import build_config
from sipguard.fraud.scan import build_engine
from sipguard.store import BaselineStore, Store
from sipguard.testing.ami_calls import dial, registered
from sipguard.testing.ami_server import AmiServer
from sipguard.testing.waits import until

USERS = {"sipguard": "s3cret"}
CN_IP = "14.21.198.22"  # iptocc: CN (text inside an AMI event; nothing is sent to it)
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALWAYS = {"days": DAYS, "start": "00:00", "end": "24:00"}  # the wall clock cannot matter


def watch_settings(tmp: Path, port: int) -> Settings:
    ami = AmiSettings(True, "127.0.0.1", port, "sipguard", "s3cret", keepalive=0.0)
    daemon = DaemonSettings(
        state_dir=str(tmp / "state"),
        control_socket=str(tmp / "ctl.sock"),
        tick_interval=0.2,
        fraud=FraudRunSettings(enabled=True),
    )
    return Settings(daemon=daemon, sources=SourcesSettings(ami=ami))


def test_calls_only_turns_off_what_binds_a_port_writes_the_kernel_or_the_disk() -> None:
    s = calls_only(Settings())
    assert not s.sources.logs.enabled and not s.sources.journald.enabled and s.sensor == {}
    assert s.sources.ami.enabled and s.daemon.fraud.enabled
    assert s.daemon.control_socket == "" and s.database == ":memory:"
    assert s.firewall.backend == "dry-run"
    assert not (s.web.enabled or s.metrics.enabled or s.fleet.enabled or s.feeds)
    assert s.rules and all(t["enabled"] is False for t in s.rules.values())
    assert not s.allow.own_addresses  # the daemon receiving the bans applies its own


def test_fraud_watch_runs_the_daemon_and_hangs_up_over_ami(tmp_path: Path) -> None:
    asyncio.run(asyncio.wait_for(_watch(tmp_path), 60))


async def _watch(tmp: Path) -> None:
    config = build_config(
        {
            "home_country": "DE",
            "national_prefix": "0",
            "international_prefixes": ["00"],
            "rules": {"after_hours": ALWAYS},
            "accounts": {"1003": {"countries": ["DE"]}},
        }
    )
    engine = build_engine(config)
    engine.load_baseline({})
    bans: list[Alert] = []

    async def ban(alert: Alert) -> None:
        bans.append(alert)

    async with AmiServer(USERS) as server:
        d = watcher(watch_settings(tmp, server.port), engine, ban, simulate=False)
        assert type(d) is Daemon  # one composition root: the daemon's own class
        task = asyncio.create_task(d.run())
        try:
            await until(lambda: server.logins == 1)
            assert d.processing.fraud is not None and d.processing.fraud.stage.engine is engine
            assert d.processing.pipeline.detector.rules == ()  # no log rule runs here
            channel, _uid = await dial(server, "1001", 3, "00881612345678")  # satellite
            hangup = await server.wait_for_action("Hangup", timeout=5)
            assert hangup.get("Channel") == channel
            await server.wait_for_action("DBPut", timeout=5)
            assert server.db[("sipguard/locked", "1001")].startswith("risky_destination")
            # a registration of 1003 (DE only) from China: to the ban sink, not a firewall
            await registered(server, "1003", CN_IP, "s1")
            await until(lambda: bans)
            assert [(str(b.network), b.rule) for b in bans] == [
                (f"{CN_IP}/32", "fraud.address_country")
            ]
            # failed logins are security events: normalized, but no rule here decides on them
            for n in range(12):
                await server.push_security(
                    "InvalidPassword",
                    AccountID="1001",
                    SessionID=f"f{n}",
                    LocalAddress="IPV4/UDP/10.0.0.1/5060",
                    RemoteAddress=f"IPV4/UDP/{CN_IP}/5060",
                )
            counts = d.processing.pipeline.counts
            await until(lambda: counts.get("external_events", 0) >= 12)
            await asyncio.sleep(0.5)  # ticks release what the normalizer held: no decision
            assert counts.get("alerts", 0) == 0 and d.enforcer.active == {}
        finally:
            d.stop()
            assert await task == 0
    # nothing on disk, no socket: a `run` daemon beside it keeps its state dir to itself
    assert not (tmp / "state").exists() and not (tmp / "ctl.sock").exists()
    assert d.store.path == ":memory:"


def test_the_daemon_imports_an_old_baseline_file_and_keeps_it_in_its_store(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    (state / "fraud-baseline.json").write_text(
        '{"accounts": {"1001": ["GB"]}, "learn_until": "done"}'
    )
    (tmp_path / "Master.csv").write_text("")
    cfg = tmp_path / "sipguard.toml"
    cfg.write_text(
        f"""
[daemon]
state_dir = "{state}"
control_socket = "{tmp_path}/ctl.sock"
tick_interval = 0.2
[daemon.fraud]
enabled = true
cdr = ["{tmp_path}/Master.csv"]
[sources.logs]
enabled = false
[firewall]
backend = "dry-run"
[fraud]
home_country = "DE"
"""
    )
    settings = load_settings(cfg)

    async def run_once(learn: Callable[[Daemon], None]) -> None:
        d = Daemon(settings, str(cfg))
        task = asyncio.create_task(d.run())
        try:
            await until(lambda: getattr(d, "processing", None) and d.processing.fraud)
            learn(d)
        finally:
            d.stop()
            assert await task == 0

    def imported(d: Daemon) -> None:
        assert d.processing.fraud is not None
        engine = d.processing.fraud.stage.engine
        assert engine.baseline() == {"1001": ["GB"]}  # read at start, from the store
        engine.load_baseline({"1001": ["GB"], "1002": ["FR"]})  # learned meanwhile

    asyncio.run(asyncio.wait_for(run_once(imported), 30))
    assert not (state / "fraud-baseline.json").exists()
    assert (state / "fraud-baseline.json.imported").exists()
    store = Store.open(settings.database)
    saved = BaselineStore(store).load()  # written at stop
    store.close()
    assert saved == {"accounts": {"1001": ["GB"], "1002": ["FR"]}, "learn_until": "done"}

    def restored(d: Daemon) -> None:
        assert d.processing.fraud is not None
        assert d.processing.fraud.stage.engine.baseline() == {"1001": ["GB"], "1002": ["FR"]}

    asyncio.run(asyncio.wait_for(run_once(restored), 30))
