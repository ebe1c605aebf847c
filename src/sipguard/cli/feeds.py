"""`sipguard feeds status` and `sipguard feeds refresh [NAME]`: the running daemon's blocklist
feeds, over the control socket."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("feeds", help="blocklist feeds of the running daemon")
    feeds_sub = p.add_subparsers(dest="feeds_command", metavar="COMMAND", required=True)
    for name, func, help in (
        ("status", cmd_status, "each feed: entries, kernel set, last refresh, last error"),
        ("refresh", cmd_refresh, "refresh now (all feeds, or the one named)"),
    ):
        q = feeds_sub.add_parser(name, help=help, description=help)
        q.add_argument("--config", metavar="PATH", help="sipguard.toml (default /etc/sipguard)")
        q.add_argument("--socket", metavar="PATH", help="control socket (default from the config)")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)
        if name == "refresh":
            q.add_argument("name", nargs="?", help="the feed's name")


def _print(rows: list[dict[str, Any]], as_json: bool) -> int:
    from sipguard.cli.daemon import _when

    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no feeds configured")
        return 0
    for r in rows:
        err = f"; last error: {r['last_error']}" if r["last_error"] else ""
        print(
            f"{r['name']} ({r['kind']}): {r['entries']} entries, {r['in_kernel']} in the kernel"
            f" set; last ok {_when(r['last_ok'])}, next in {r['next_in']:.0f}s{err}"
        )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from sipguard.cli.daemon import _request

    return _print(_request(args, "feeds_status"), args.json)


def cmd_refresh(args: argparse.Namespace) -> int:
    from sipguard.cli.daemon import _request

    payload = {"name": args.name} if args.name else {}
    return _print(_request(args, "feeds_refresh", payload), args.json)
