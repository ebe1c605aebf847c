"""`sipguard firewall remove | list | render` (`render` is the sensor package's kernel-only mode).

These talk to the kernel directly, not through the daemon: `remove` must work when the daemon is
stopped or broken, and `list` shows what the kernel really holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from sipguard.actions import BACKENDS, FirewallConfig, FirewallError, make_firewall
from sipguard.cli.main import CliError
from sipguard.sensor.render import register_render
from sipguard.sensor.teardown import remove_all

KERNEL_BACKENDS = [b for b in BACKENDS if b not in ("dry-run", "auto")]


def register(subparsers: Any) -> None:
    fw = subparsers.add_parser("firewall", help="inspect or remove sipguard's kernel rules")
    fw_sub = fw.add_subparsers(dest="firewall_command", metavar="ACTION")
    fw.set_defaults(func=lambda args: _usage(fw))

    rm = fw_sub.add_parser("remove", help="remove every table, chain and set sipguard added")
    _common(rm)
    rm.set_defaults(func=cmd_remove)

    ls = fw_sub.add_parser("list", help="show the banned networks the kernel holds")
    _common(ls)
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=cmd_list)

    register_render(fw_sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=KERNEL_BACKENDS, default="nftables")
    p.add_argument("--table", default="sipguard", help="table/chain/set name (default sipguard)")
    p.add_argument("--netns", default=None, help="operate inside this named network namespace")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _firewall(args: argparse.Namespace) -> Any:
    try:
        cfg = FirewallConfig(table=args.table, netns=args.netns, flush_conntrack=False)
    except ValueError as exc:
        raise CliError(f"--{exc}") from exc
    return make_firewall(args.backend, cfg)


def cmd_remove(args: argparse.Namespace) -> int:
    fw = _firewall(args)
    try:
        fw.teardown()
        extra = _remove_sensor_objects(args.netns)
    except FirewallError as exc:
        raise CliError(f"firewall remove ({args.backend}): {exc}") from exc
    finally:
        fw.close()
    print(f"removed sipguard's {args.backend} rules and sets (table {args.table})")
    for item in extra:
        print(f"removed {item}")
    return 0


def _remove_sensor_objects(netns: str | None) -> list[str]:
    """The sensor's queue rules and the rendered kernel-only rules."""
    return remove_all(netns)


def cmd_list(args: argparse.Namespace) -> int:
    fw = _firewall(args)
    try:
        held = fw.list()
    except FirewallError as exc:
        raise CliError(
            f"firewall list ({args.backend}): {exc} (is sipguard's table there? "
            "the daemon creates it at start)"
        ) from exc
    finally:
        fw.close()
    rows = sorted(held.items(), key=lambda kv: (kv[0].version, kv[0].network_address))
    if args.json:
        out = [{"network": str(n), "seconds_left": left} for n, left in rows]
        json.dump({"backend": args.backend, "time": time.time(), "bans": out}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("no banned networks in the kernel")
        return 0
    width = max(len(str(n)) for n, _ in rows)
    for net, left in rows:
        print(f"{net!s:<{width}}  {'permanent' if left is None else _human(left)}")
    print(f"{len(rows)} banned network(s)")
    return 0


def _human(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    parts = [f"{v}{unit}" for v, unit in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v]
    return "".join(parts) or "0s"
