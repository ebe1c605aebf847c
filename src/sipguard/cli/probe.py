"""`sipguard probe TARGET`: attack your own PBX the way scanners do, within strict bounds."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time
from typing import Any

from sipguard.audit.model import Severity
from sipguard.cli.main import CliError

SEVERITIES = [s.label for s in Severity]
PROBE_KEYS = {"targets", "numbers"}
DEFAULT_PORTS = {"udp": 5060, "tcp": 5060, "tls": 5061}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "probe",
        help="probe your own PBX from outside (enumeration, guest calls, open services, ...)",
    )
    p.add_argument("target", metavar="TARGET", help="host or host:port (this host or your own)")
    p.add_argument("--transport", choices=("udp", "tcp", "tls"), default="udp")
    p.add_argument("--domain", help="the SIP domain to speak (to test the secret domain)")
    p.add_argument("--account", metavar="USER[:PASSWORD]", help="an account you own")
    for flag, text in (
        ("--guess", "try up to N (<= 1000) common passwords against --account; stops at a hit"),
        ("--protection", "fail to log in up to N times: when is this source blocked? (opt-in)"),
    ):
        p.add_argument(flag, type=int, default=0, metavar="N", help=text)
    p.add_argument(
        "--extensions", default="100-102,200,1000-1001", metavar="RANGE", help="e.g. 100-120,200"
    )
    p.add_argument("--numbers", metavar="N1,N2", help="outside numbers (default: package list)")
    p.add_argument("--checks", metavar="NAMES", help="comma-separated subset of the checks")
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--evidence", action="store_true", help="text: print the evidence too")
    p.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        choices=SEVERITIES,
        help="exit 1 when a finding at or above SEVERITY exists",
    )
    p.add_argument("--i-own-this", action="store_true", help="the target is yours (not local)")
    p.add_argument("--config", metavar="PATH", help="sipguard.toml (probe.targets)")
    p.add_argument("--max-packets", type=int, default=1000, metavar="N")
    p.add_argument("--rate", type=float, default=20.0, metavar="PER_SECOND")
    p.add_argument("--max-time", type=float, default=300.0, metavar="SECONDS")
    p.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--timing-margin", type=float, default=250.0, metavar="MS")
    p.add_argument("--ami-port", type=int, default=5038)
    p.add_argument("--http-port", type=int, default=8088)
    p.add_argument("--iax-port", type=int, default=4569)
    p.add_argument("--tls-port", type=int, help="SIP-TLS port whose certificate to judge")
    p.set_defaults(func=run_probe_cli)


def parse_extensions(text: str) -> tuple[str, ...]:
    """ "100-105,200" -> ("100", ..., "105", "200"); at most 1000 extensions."""
    out: dict[str, None] = {}
    for part in text.split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if dash and first.isdigit() and last.isdigit() and int(first) <= int(last):
            width = len(first)
            for n in range(int(first), int(last) + 1):
                out[str(n).zfill(width)] = None
                if len(out) > 1000:
                    break
        elif part and not dash and part.replace("_", "").replace(".", "").isalnum():
            out[part] = None
        else:
            raise CliError(f"--extensions: bad item {part!r} (use e.g. 100-120,200)")
        if len(out) > 1000:
            raise CliError("--extensions: more than 1000 extensions")
    return tuple(out)


def _probe_settings(
    path: str | None,
) -> tuple[list[ipaddress.IPv4Network | ipaddress.IPv6Network], list[str]]:
    from sipguard.config.errors import ConfigError
    from sipguard.config.settings import load_settings
    from sipguard.probe.safety import parse_networks

    try:
        settings = load_settings(path)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    table: dict[str, Any] = settings.probe
    where = settings.origins.get("probe", path or "sipguard.toml")
    for key in table:
        if key not in PROBE_KEYS:
            raise CliError(f"{where}: probe.{key}: unknown key")
    targets, numbers = table.get("targets", []), table.get("numbers", [])
    for key, value in (("targets", targets), ("numbers", numbers)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CliError(f"{where}: probe.{key}: expected a list of strings")
    try:
        nets = parse_networks(targets, f"{where}: probe.targets")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return nets, list(numbers)


def _resolve(host: str) -> str:
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise CliError(f"{host}: cannot resolve ({exc})") from None
    return str(infos[0][4][0])


def run_probe_cli(args: argparse.Namespace) -> int:
    from sipguard.probe import Budget, Ledger, MeteredTransport, Options, Target, run_probe
    from sipguard.probe.checks_auth import MAX_GUESS
    from sipguard.probe.netio import SocketNet
    from sipguard.probe.report import exit_status, to_json, to_sarif, write_text
    from sipguard.probe.runner import CHECK_NAMES
    from sipguard.probe.safety import refusal, split_target
    from sipguard.probe.transport import open_transport

    try:
        host, port = split_target(args.target, DEFAULT_PORTS[args.transport])
    except ValueError as exc:
        raise CliError(f"TARGET: {exc}") from None
    if not 0 <= args.guess <= MAX_GUESS:
        raise CliError(f"--guess: must be 0..{MAX_GUESS}")
    if args.guess and not args.account:
        raise CliError("--guess: needs --account USER (one account you own)")
    if not 0 <= args.protection <= 1000:
        raise CliError("--protection: must be 0..1000")
    checks = tuple(c.strip() for c in args.checks.split(",")) if args.checks else ()
    for name in checks:
        if name not in CHECK_NAMES:
            raise CliError(f"--checks: unknown check {name!r} (one of {', '.join(CHECK_NAMES)})")
    try:
        budget = Budget(args.max_packets, args.rate, args.max_time)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    declared, config_numbers = _probe_settings(args.config)
    address = _resolve(host)
    reason = refusal(address, declared, args.i_own_this)
    if reason:
        raise CliError(reason)
    user, _, password = (args.account or "").partition(":")
    numbers = [n.strip() for n in args.numbers.split(",")] if args.numbers else config_numbers
    options = Options(
        extensions=parse_extensions(args.extensions),
        numbers=tuple(n for n in numbers if n),
        domain=args.domain,
        account=user or None,
        password=password if ":" in (args.account or "") else None,
        guess=args.guess,
        protection=args.protection,
        timing_margin=args.timing_margin / 1000.0,
        ami_port=args.ami_port,
        http_port=args.http_port,
        iax_port=args.iax_port,
        tls_port=args.tls_port or (port if args.transport == "tls" else None),
        checks=checks,
    )
    target = Target(address, port, args.transport, args.domain)
    ledger = Ledger(budget, time.monotonic, time.sleep)
    if args.transport != "udp":
        ledger.admit(f"sip/{args.transport}", target.hostport, b"")  # the connection itself
    try:
        inner = open_transport(args.transport, address, port)
    except OSError as exc:
        raise CliError(f"{args.target}: cannot connect over {args.transport} ({exc})") from None
    transport = MeteredTransport(inner, ledger, target.hostport)
    try:
        result = run_probe(target, options, transport, SocketNet(), ledger, args.timeout)
    finally:
        transport.close()
    if args.format == "json":
        print(to_json(result))
    elif args.format == "sarif":
        print(to_sarif(result))
    else:
        write_text(result, sys.stdout, args.evidence)
    return exit_status(result, args.fail_on)
