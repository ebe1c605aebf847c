"""`sipguard run`, `config check`, and the control commands that talk to the running daemon."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from sipguard.cli.main import CliError
from sipguard.config.errors import ConfigError
from sipguard.config.settings import CONFIG_HELP, Settings, load_settings, render_toml


def register(sub: Any) -> None:
    def add(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
        p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon: follow Asterisk, ban attackers in the kernel")
    p.add_argument("--dry-run", action="store_true", help="use the dry-run firewall (no kernel)")
    p.add_argument(
        "--simulate", action="store_true", help="report what would be banned, ban nothing"
    )
    p.add_argument(
        "--no-privsep",
        action="store_true",
        help="tests/dev only: one process that parses with CAP_NET_ADMIN (default: two;"
        " three with [sensor])",
    )
    # the enforcer starts the parsing process with its end of the channel; not for people
    p.add_argument("--privsep-fd", default=None, help=argparse.SUPPRESS)
    # ... and the packet sensor, with its end of the link to the parser (daemon/sensorproc.py)
    p.add_argument("--sensor-fd", default=None, help=argparse.SUPPRESS)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="COMMAND")
    p = cfg_sub.add_parser("check", help="validate and print the effective configuration")
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    p.set_defaults(func=cmd_config_check)

    def control(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = add(name, func, help)
        p.add_argument("--socket", metavar="PATH", help="control socket (default from the config)")
        return p

    p = control("status", cmd_status, "the running daemon's state")
    p.add_argument(
        "--json", action="store_true", help="JSON; without a daemon {running: false} and exit 3"
    )
    p = control("bans", cmd_bans, "active bans")
    p.add_argument("--json", action="store_true", help="JSON with the evidence")
    p.add_argument(
        "--format",
        choices=("txt", "json"),
        help="export: txt = one address/CIDR a line; json = APIBAN-like {ipaddress, ID}",
    )
    p = control("ban", cmd_ban, "ban an address or CIDR now")
    p.add_argument("addr")
    p.add_argument("--for", dest="duration", default="1h", help="90s, 10m, 1h, 1d, permanent")
    p.add_argument("--reason", default="manual ban")
    p.add_argument("--force", action="store_true", help="ban even if on the allow-list")
    p = control("unban", cmd_unban, "lift a ban")
    p.add_argument("addr")
    p = control(
        "allow", cmd_allow, "add a CIDR to the allow-list (and lift its bans), list or remove"
    )
    p.add_argument("cidr", nargs="?", help="address or CIDR to allow")
    p.add_argument("--note", default="")
    p.add_argument(
        "--list", action="store_true", help="list the allow-list and where each entry comes from"
    )
    p.add_argument(
        "--remove", metavar="CIDR", help="remove a runtime entry (added by `sipguard allow`)"
    )
    p.add_argument("--json", action="store_true", help="with --list: JSON")
    p = control("unallow", cmd_unallow, "remove a runtime allow-list entry")
    p.add_argument("cidr")
    p = control("explain", cmd_explain, "the rule, events and log lines behind a ban")
    p.add_argument("addr", help="an address or CIDR, or an account (account:NAME)")
    p.add_argument("--json", action="store_true")
    control("reload", cmd_reload, "re-read the configuration (like SIGHUP)")


def _settings(args: argparse.Namespace) -> Settings:
    try:
        return load_settings(args.config)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def cmd_config_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from sipguard.daemon.build import build_profiles, build_rules, build_sensor_config
    from sipguard.daemon.fleet import check_fleet
    from sipguard.daemon.fraud import build_fraud_engine
    from sipguard.daemon.split import identity

    try:  # the tables whose owners validate them: rules, profiles, the sensor, fraud, fleet
        identity(settings)  # [daemon] user/group/groups name accounts that exist
        rules = build_rules(settings)
        build_profiles(settings)
        build_sensor_config(settings)
        build_fraud_engine(settings)
        check_fleet(settings)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps(settings.to_dict(), indent=2))
        return 0
    files = ", ".join(settings.files) or "none (embedded defaults)"
    print(f"# configuration OK; files read: {files}; {len(rules)} rules")
    print(render_toml(settings.to_dict()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from sipguard.daemon.app import Daemon
    from sipguard.daemon.logs import setup_logging

    settings = _settings(args)
    setup_logging(settings.daemon.log_format, settings.daemon.log_level)
    try:
        if args.sensor_fd is not None:
            from sipguard.daemon.split import start_sensor

            return start_sensor(settings, args.sensor_fd)
        if args.privsep_fd is None and not args.no_privsep:
            from sipguard.daemon.split import run_enforcer

            return run_enforcer(settings, args.config, args.dry_run, args.simulate)
        firewall = None
        if args.privsep_fd is not None:
            from sipguard.daemon.split import start_parser

            firewall = start_parser(settings, args.privsep_fd)  # before any input is read
        daemon = Daemon(
            settings, args.config, dry_run=args.dry_run, simulate=args.simulate, firewall=firewall
        )
        return asyncio.run(daemon.run())
    except ExceptionGroup as group:
        first = group.exceptions[0]
        if _start_error(first):
            raise CliError(str(first)) from None
        raise
    except OSError as exc:
        hint = " (sipguard run needs root)" if isinstance(exc, PermissionError) else ""
        where = f"{exc.filename}: " if exc.filename else ""
        raise CliError(f"cannot start: {where}{exc.strerror or exc}{hint}") from None
    except Exception as exc:
        if _start_error(exc):  # bad config, no nft/permission, unusable database: one line
            raise CliError(f"cannot start: {exc}") from None
        raise


def _start_error(exc: BaseException) -> bool:
    from sipguard.actions import FirewallError
    from sipguard.daemon.caps import PrivilegeError
    from sipguard.daemon.control import ControlError
    from sipguard.store import StoreError

    errors = ConfigError | FirewallError | StoreError | ControlError | PrivilegeError
    return isinstance(exc, errors)


def _request(args: argparse.Namespace, cmd: str, payload: dict[str, Any] | None = None) -> Any:
    from sipguard.daemon.control import ControlError, request

    path = args.socket
    if not path:
        try:
            path = load_settings(args.config).daemon.control_socket
        except ConfigError as exc:
            raise CliError(str(exc)) from None
    try:
        return request(path, cmd, payload)
    except ControlError as exc:
        raise CliError(str(exc)) from None


def _when(t: float | None) -> str:
    if t is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _left(seconds: float | None) -> str:
    if seconds is None:
        return "permanent"
    s = int(seconds)
    if s >= 86400:
        return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def cmd_status(args: argparse.Namespace) -> int:
    try:
        st = _request(args, "status")
    except CliError as exc:
        if not args.json:
            raise
        # scripts asked for JSON: they get JSON, and the exit status says it is not running
        print(json.dumps({"running": False, "error": str(exc)}))
        return 3
    if args.json:
        print(json.dumps({"running": True, **st}, indent=2))  # one key tells scripts either way
        return 0
    print(f"sipguard {st['version']} pid {st['pid']} up {st['uptime']:.0f}s")
    print(f"  config:   {', '.join(st['config'])}")
    mode = st["backend"] + (" (simulate: report only)" if st["simulate"] else "")
    print(f"  firewall: {mode}; {st['active_bans']} active bans")
    fw = st["firewall"]["add"]
    print(f"  kernel:   {fw['count']} add batches, mean {fw['mean_ms']} ms, max {fw['max_ms']} ms")
    enf = st.get("enforcer")
    if enf:
        counts = ", ".join(f"{k} {v}" for k, v in enf["counts"].items()) or "no requests"
        print(f"  enforcer: pid {enf['pid']} ({enf['backend']}); {counts}")
    for name, s in st["sources"].items():
        err = f" (last error: {s['last_error']})" if s["last_error"] else ""
        print(f"  source {name}: {s['state']}, {s['restarts']} restarts{err}")
    for w in st["watching"]:
        print(f"  watching {w['source']} {w['name']}: {w['state']}")
    if st["watch_warning"]:
        print(f"  WARNING: {st['watch_warning']}")
    for f in st.get("feeds", []):
        err = f" (last error: {f['last_error']})" if f["last_error"] else ""
        print(f"  feed {f['name']} ({f['kind']}): {f['in_kernel']} in the kernel set{err}")
    pc = st["pipeline"]
    print(
        f"  pipeline: {pc.get('events', 0)} events, {pc.get('alerts', 0)} alerts,"
        f" {st['queue']['dropped']} dropped"
    )
    fl = st.get("fleet") or {}
    if fl.get("enabled"):
        state = "connected" if fl["connected"] else "NOT connected"
        err = f", last error: {fl['last_error']}" if fl["last_error"] else ""
        print(
            f"  fleet:    node {fl['node']}, {state}, lag {fl['lag_seconds']}s,"
            f" outbox {fl['outbox']}{err}"
        )
    for a in st.get("accounts_under_attack", []):
        print(_account_line(a))
    return 0


def _account_line(a: dict[str, Any]) -> str:
    """One account under attack: which, from how many sources, since and until when."""
    return (
        f"  ATTACK on account {a['account']!r}: {a['sources']} sources ({a['rule']},"
        f" {a['severity']}), since {_when(a['since'])}, lower thresholds until {_when(a['until'])}"
    )


def cmd_bans(args: argparse.Namespace) -> int:
    bans = _request(args, "bans", {"evidence": bool(args.json)})
    if args.format:
        print(export_bans(bans, args.format, time.time()), end="")
        return 0
    if args.json:
        print(json.dumps(bans, indent=2))
        return 0
    if not bans:
        print("no active bans")
        return 0
    print(f"{'address':<24} {'rule':<24} {'left':>10}  reason")
    for b in bans:
        print(f"{b['network']:<24} {b['rule']:<24} {_left(b['remaining']):>10}  {b['reason']}")
    return 0


def export_bans(bans: list[dict[str, Any]], fmt: str, now: float) -> str:
    """Active bans for other tools: a plain list (a /32 or /128 written as the address), or
    APIBAN's answer shape so an APIBAN client can read it (ID: when the export was made)."""
    addrs = [str(b["network"]).removesuffix("/32").removesuffix("/128") for b in bans]
    if fmt == "txt":
        return "".join(f"{a}\n" for a in addrs)
    return json.dumps({"ipaddress": addrs, "ID": str(int(now))}, indent=1) + "\n"


def cmd_ban(args: argparse.Namespace) -> int:
    payload = {"addr": args.addr, "for": args.duration, "reason": args.reason, "force": args.force}
    b = _request(args, "ban", payload)
    print(f"banned {b['network']} ({_left(b['remaining'])})")
    return 0


def cmd_unban(args: argparse.Namespace) -> int:
    r = _request(args, "unban", {"addr": args.addr})
    print(f"unbanned {r['unbanned']}")
    return 0


def cmd_allow(args: argparse.Namespace) -> int:
    if args.list:
        if args.cidr or args.remove:
            raise CliError("allow --list takes no CIDR")
        entries = _request(args, "allow_list")
        if args.json:
            print(json.dumps(entries, indent=2))
            return 0
        for e in entries:
            fixed = "" if e["origin"] == "runtime" else "  (not removable at runtime)"
            print(f"{e['network']:<44} {e['origin']}{fixed}")
        return 0
    if args.remove:
        if args.cidr:
            raise CliError("allow --remove CIDR takes no second CIDR")
        args.cidr = args.remove
        return cmd_unallow(args)
    if not args.cidr:
        raise CliError("allow: give a CIDR, --list or --remove CIDR")
    r = _request(args, "allow", {"cidr": args.cidr, "note": args.note})
    lifted = f"; lifted bans: {', '.join(r['unbanned'])}" if r["unbanned"] else ""
    print(f"allowed {r['allowed']}{lifted}")
    return 0


def cmd_unallow(args: argparse.Namespace) -> int:
    r = _request(args, "unallow", {"cidr": args.cidr})
    print(f"removed {r['removed']} from the allow-list")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    r = _request(args, "explain", {"addr": args.addr})
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    if "account" in r:
        return _explain_account(r)
    if r["allow_listed"]:
        print(f"{r['address']} is on the allow-list ({r['allow_listed']})")
    a = r["active"]
    if a:
        print(f"{a['network']} banned by rule {a['rule']} ({a['origin']}), level {a['level']}")
        if len(r.get("rules", [])) > 1:
            print(f"  rules:   {', '.join(r['rules'])} fired")
        print(f"  why:     {a['reason']}")
        print(f"  since:   {_when(a['start'])}; expires {_when(a['expires'])}")
    else:
        print(f"{r['address']} is not banned now")
    if r["history"]:
        print(f"  history: {len(r['history'])} decisions")
        for h in r["history"]:
            print(f"    {_when(h['start'])}  {h['rule']}: {h['reason']}")
    if r["events"]:
        print("  evidence:")
        for e in r["events"]:
            origin = e.get("origin") or {}
            where = f"{origin.get('source', '')}:{origin.get('line', 0)}"
            print(f"    {e['kind']:<18} {where}")
            if origin.get("text"):
                print(f"      {origin['text']}")
    return 0


def _explain_account(r: dict[str, Any]) -> int:
    a = r["under_attack"]
    print(_account_line(a).strip() if a else f"account {r['account']!r} is not under attack now")
    if a:
        print(f"  why:     {a['reason']}")
    for x in r["alerts"]:
        print(f"    {_when(x['time'])}  {x['rule']}: {x['reason']}")
    for b in r["bans"]:
        print(f"  banned {b['network']} by rule {b['rule']}: {b['reason']}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    r = _request(args, "reload")
    if not r.get("reloaded"):
        raise CliError(f"reload failed, the daemon keeps its configuration: {r.get('error')}")
    print(f"reloaded: {r['rules']} rules, {r['allow']} allow-list entries")
    return 0
