"""`sipguard sensor`: run the SIP sensor standalone (the daemon runs the same NfqSensor).

Events are printed one JSON object a line on stdout; counters go to stderr every
`--stats-every` seconds and once at exit.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import tomllib
from typing import Any

from sipguard.actions.base import FirewallError
from sipguard.cli.main import CliError, require
from sipguard.config.errors import ConfigError
from sipguard.config.settings import MAIN_CONFIG_HELP, main_file
from sipguard.core.events import Event
from sipguard.data import scanner_signatures
from sipguard.sensor.config import SensorConfig, parse_sensor_config


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sensor", help="run the SIP sensor (NFQUEUE): drop scanners, wrong domains, floods"
    )
    p.add_argument(
        "--config", metavar="PATH", help=MAIN_CONFIG_HELP + "; its [sensor] table is used"
    )
    p.add_argument("--domain", action="append", default=[], help="secret SIP domain (repeatable)")
    p.add_argument("--queue", type=int, default=None, help="NFQUEUE number (default 0)")
    p.add_argument("--trusted", action="append", default=[], help="trunk address or CIDR")
    p.add_argument("--sip-port", type=int, action="append", default=[], help="default 5060")
    p.add_argument("--tls-port", type=int, action="append", default=[], help="default 5061")
    p.add_argument("--rate", action="append", default=[], metavar="METHOD=RATE/BURST",
                   help="token bucket per source, e.g. REGISTER=2/20")  # fmt: skip
    p.add_argument("--workers", type=int, default=None,
                   help="processes, one queue each (spread by address pair)")  # fmt: skip
    p.add_argument("--max-queue-len", type=int, default=4096, help="kernel queue length")
    p.add_argument("--verdict-batch", type=int, default=64, metavar="N",
                   help="verdicts sent per write (1: one per packet)")  # fmt: skip
    p.add_argument("--stats-every", type=float, default=0.0, help="print counters every N s")
    p.add_argument("--quiet", action="store_true", help="do not print events")
    p.set_defaults(func=cmd_sensor)


def load_config(args: argparse.Namespace) -> SensorConfig:
    table: dict[str, Any] = {}
    file = "command line"
    if args.config:
        file = str(main_file(args.config))
        try:
            with open(file, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise CliError(f"{args.config}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise CliError(f"{args.config}: {exc}") from exc
        section = doc.get("sensor", {})
        if not isinstance(section, dict):
            raise CliError(f"{args.config}: sensor: must be a table")
        table.update(section)
    if args.domain:
        table["domains"] = list(args.domain)
    if args.trusted:
        table["trusted"] = [*table.get("trusted", []), *args.trusted]
    if args.queue is not None:
        table["queue"] = args.queue
    if args.workers is not None:
        table["workers"] = args.workers
    if args.sip_port:
        table["sip_ports"] = args.sip_port
    if args.tls_port:
        table["tls_ports"] = args.tls_port
    for spec in args.rate:
        method, _, value = spec.partition("=")
        rate, _, burst = value.partition("/")
        try:
            limits = {"rate": float(rate), "burst": float(burst or rate)}
        except ValueError:
            raise CliError(
                f"--rate {spec!r}: expected METHOD=RATE/BURST, e.g. INVITE=2/10"
            ) from None
        table.setdefault("rate_limits", {})[method.upper()] = limits
    try:
        config = parse_sensor_config(table, file, scanner_signatures())
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    if not config.domains:
        raise CliError(f"{file}: sensor.domains: at least one secret domain is required")
    return config


def cmd_sensor(args: argparse.Namespace) -> int:
    from sipguard.sensor.nfq import NfqSensor

    require("netfilterqueue", "sensor", "libnetfilter-queue1")  # else a traceback at bind time
    config = load_config(args)
    if not 1 <= args.verdict_batch <= 4096:
        raise CliError(f"--verdict-batch {args.verdict_batch}: must be 1 to 4096")
    if config.workers > 1:
        from sipguard.sensor.workers import run_workers

        return run_workers(config, args)

    def emit(event: Event) -> None:
        if not args.quiet:
            sys.stdout.write(json.dumps(event.to_dict()) + "\n")
            sys.stdout.flush()

    sensor = NfqSensor(config, emit, max_len=args.max_queue_len, verdict_batch=args.verdict_batch)
    last = [time.monotonic()]

    def tick(s: NfqSensor) -> None:
        if args.stats_every and time.monotonic() - last[0] >= args.stats_every:
            last[0] = time.monotonic()
            print(json.dumps({"stats": s.stats()}), file=sys.stderr, flush=True)

    def on_signal(signum: int, frame: object) -> None:
        sensor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def ready(s: NfqSensor) -> None:
        domains = ", ".join(sorted(config.domains))
        mode = s.rules.mode or "none"
        print(
            f"sipguard sensor: running on queue {config.queue} (rules via {mode}), "
            f"domains {domains}",
            file=sys.stderr,
            flush=True,
        )

    try:
        sensor.run(on_tick=tick, on_ready=ready)
    except OSError as exc:
        raise CliError(f"sensor: {exc} (needs root / CAP_NET_ADMIN)") from exc
    except FirewallError as exc:
        raise CliError(f"sensor: installing table inet sipguard_sensor: {exc}") from exc
    print(json.dumps({"stats": sensor.stats()}), file=sys.stderr, flush=True)
    return 0
