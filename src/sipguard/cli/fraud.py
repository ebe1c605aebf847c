"""`sipguard fraud scan CDR...` (offline report) and `sipguard fraud watch` (live, over AMI)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sipguard.cli.main import CliError
from sipguard.config.errors import ConfigError


def register(subparsers: Any) -> None:
    fraud = subparsers.add_parser("fraud", help="toll-fraud and account protection")
    sub = fraud.add_subparsers(dest="fraud_command", metavar="COMMAND")
    fraud.set_defaults(func=lambda _args: (fraud.print_help(), 2)[1])

    scan = sub.add_parser("scan", help="report fraud in CDR files (Master.csv or custom CSV)")
    scan.add_argument("cdr", nargs="+", metavar="CDR", help="CDR CSV files, oldest first")
    _common(scan)
    scan.add_argument("--format", choices=("text", "json"), default="text")
    scan.add_argument(
        "--baseline",
        metavar="JSON",
        help="known countries per account ({account: [CC,...]}); skips learning",
    )
    scan.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="processes for large inputs (default: every core; 1: one process)",
    )
    scan.set_defaults(func=run_scan)

    watch = sub.add_parser("watch", help="watch live calls over AMI and act on fraud")
    _common(watch)
    watch.add_argument("--host", default="127.0.0.1")
    watch.add_argument("--port", type=int, default=5038)
    watch.add_argument("--user", required=True, help="AMI user (manager.conf)")
    watch.add_argument("--secret-file", required=True, help="file holding the AMI secret")
    watch.add_argument(
        "--cdr",
        action="append",
        default=[],
        metavar="CSV",
        help="also follow this CDR file (repeatable)",
    )
    watch.add_argument("--dry-run", action="store_true", help="report, do not hang up, lock or ban")
    watch.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's control socket for bans (default: from --config, else the default)",
    )
    watch.add_argument(
        "--ban-for", default="1d", metavar="DURATION", help="ban length asked of the daemon"
    )
    watch.set_defaults(func=run_watch)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="sipguard.toml with a [fraud] table")
    p.add_argument("--rates", metavar="CSV", help="rate table: prefix,cost_per_minute")
    p.add_argument("--hotlist", metavar="CSV", help="number ranges to treat as fraud: prefix,label")


def _engine(args: argparse.Namespace) -> Any:
    from sipguard.fraud.config import load_config
    from sipguard.fraud.scan import build_engine
    from sipguard.fraud.tables import load_hotlist, load_rates

    try:
        config = load_config(args.config)
        rates = load_rates(args.rates) if args.rates else None
        hotlist = load_hotlist(args.hotlist) if args.hotlist else None
        return build_engine(config, rates, hotlist)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _baseline(path: str) -> dict[str, list[str]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(c, str) for c in v) for v in data.values()
    ):
        raise CliError(f"{path}: expected an object of account -> list of country codes")
    return data


def run_scan(args: argparse.Namespace) -> int:
    from sipguard.fraud.parallel import usable_jobs
    from sipguard.fraud.scan import scan

    if args.jobs is not None and not 1 <= args.jobs <= 64:
        raise CliError(f"--jobs: {args.jobs} is not between 1 and 64")
    jobs = usable_jobs(args.jobs)
    engine = _engine(args)
    if args.baseline:
        engine.load_baseline(_baseline(args.baseline))
    for path in args.cdr:
        if Path(path).is_dir():
            raise CliError(f"{path}: is a directory; give the CDR files in it (e.g. Master.csv)")
        if not Path(path).is_file():
            raise CliError(f"{path}: no such file")
    try:
        result = scan(args.cdr, engine, jobs=jobs)
    except OSError as exc:
        raise CliError(f"{exc.filename}: {exc.strerror}") from None
    except RuntimeError as exc:  # a scan process died (e.g. killed for memory)
        raise CliError(str(exc)) from None
    if result.rows and not result.parsed:
        # junk, an Asterisk log, the wrong --config layout: not "0 alerts", which reads as clean
        names = ", ".join(args.cdr)
        raise CliError(
            f"{names}: nothing readable as CDR ({result.rows} rows, none in the layout "
            "of [fraud.cdr] columns; see docs/fraud.md)"
        )
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=1))
    else:
        import shutil

        # piped output is wrapped at 100 columns
        width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
        print(result.text(max(40, width)))
    return 1 if result.incidents else 0


def run_watch(args: argparse.Namespace) -> int:
    import asyncio

    try:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CliError(f"{args.secret_file}: {exc.strerror}") from None
    engine = _engine(args)
    bans = DaemonBans(_control_socket(args), args.ban_for, args.dry_run)
    try:
        return asyncio.run(_watch(engine, args, secret, bans))
    except ImportError as exc:
        raise CliError(f"the AMI client is not available: {exc}") from None
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _control_socket(args: argparse.Namespace) -> str:
    """--socket, else the daemon's socket from --config (when it is a whole sipguard.toml)."""
    from sipguard.config.settings import DaemonSettings, load_settings

    if args.socket:
        return str(args.socket)
    if args.config:
        try:
            return load_settings(args.config).daemon.control_socket
        except ConfigError:
            pass  # a file holding only the [fraud] keys: the daemon's default socket
    return DaemonSettings().control_socket


async def _watch(engine: Any, args: argparse.Namespace, secret: str, bans: DaemonBans) -> int:
    """The Daemon with only its call sources (`daemon/watch.py`) on an AMI login of its own;
    bans go to the running daemon (if any)."""
    from dataclasses import replace

    from sipguard.config.settings import AmiSettings, FraudRunSettings, Settings
    from sipguard.daemon.logs import setup_logging
    from sipguard.daemon.watch import watch_calls

    s = Settings()
    setup_logging(s.daemon.log_format, s.daemon.log_level)
    ami = AmiSettings(True, args.host, args.port, args.user, secret)
    ami = replace(ami, events="security,system,call,cdr")
    daemon = replace(s.daemon, fraud=FraudRunSettings(enabled=True, cdr=list(args.cdr)))
    settings = replace(s, sources=replace(s.sources, ami=ami), daemon=daemon)

    async def ban(alert: Any) -> None:
        bans(alert)

    try:
        return await watch_calls(settings, engine, ban, args.dry_run)
    finally:
        await bans.drain()


class DaemonBans:
    """`on_alert` for the standalone watcher: a fraud alert with an address becomes the control
    socket's `ban` (the daemon applies its allow-list); with no daemon running it is logged."""

    def __init__(self, socket: str, duration: str, dry_run: bool = False) -> None:
        self.socket, self.duration, self.dry_run = socket, duration, dry_run
        self.sent: list[str] = []  # addresses the daemon banned (bounded)
        self._pending: set[Any] = set()

    def __call__(self, alert: Any) -> None:
        import asyncio

        if alert.network is None:
            return
        # the control request blocks (a Unix socket, up to its timeout): off the event loop
        fut = asyncio.get_running_loop().run_in_executor(None, self.send, alert)
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def reason(self, alert: Any) -> str:
        calls = " ".join(e.origin.text for e in alert.events if e.origin.text)
        return f"{alert.rule}: {alert.reason}; calls {calls or '-'}"[:500]

    def send(self, alert: Any) -> None:
        import logging

        from sipguard.daemon.control import ControlError, request

        log = logging.getLogger("sipguard.fraud")
        addr, reason = str(alert.network), self.reason(alert)
        if self.dry_run:
            log.warning("fraud ban %s [dry-run]: %s", addr, reason)
            return
        payload = {"addr": addr, "for": self.duration, "reason": reason}
        try:
            request(self.socket, "ban", payload, timeout=5)
        except ControlError as exc:
            # no daemon (or it refused, e.g. allow-listed): the alert is still on record here
            log.warning("fraud ban %s not applied (%s): %s", addr, exc, reason)
            return
        self.sent.append(addr)
        del self.sent[:-1000]
        log.warning("fraud ban %s sent to the daemon: %s", addr, reason)

    async def drain(self) -> None:
        import asyncio

        if self._pending:
            await asyncio.wait(list(self._pending), timeout=6)
