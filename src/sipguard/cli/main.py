"""The `sipguard` command: one entry point, one module per group of subcommands.

Each module in SUBCOMMAND_MODULES exposes `register(subparsers)`, which adds its parsers and sets
`func` (a callable taking the parsed args and returning an exit status). A module that is missing
(an optional part not installed) is skipped, so the rest of the CLI keeps working.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sipguard import __version__

SUBCOMMAND_MODULES = (
    "sipguard.cli.scan",  # scan
    "sipguard.cli.rules",  # rules list / rules test
    "sipguard.cli.daemon",  # run, status, bans, ban, unban, allow, explain, config check
    "sipguard.cli.firewall",  # firewall remove / render
    "sipguard.cli.sensor",  # sensor
    "sipguard.cli.audit",  # audit, harden
    "sipguard.cli.fraud",  # fraud scan
    "sipguard.cli.web",  # web-password
    "sipguard.cli.probe",  # probe
    "sipguard.cli.feeds",  # feeds status / refresh
)


# command -> the module that registers it, so a run imports only what it uses (start-up time
# matters for `sipguard ban` from scripts and for every scan); `--help` imports them all
COMMAND_MODULES = {
    "scan": "sipguard.cli.scan",
    "rules": "sipguard.cli.rules",
    **dict.fromkeys(
        (
            *("run", "config", "status", "bans", "ban", "unban"),
            *("allow", "unallow", "explain", "reload"),
        ),
        "sipguard.cli.daemon",
    ),
    "firewall": "sipguard.cli.firewall",
    "feeds": "sipguard.cli.feeds",
    "sensor": "sipguard.cli.sensor",
    "audit": "sipguard.cli.audit",
    "harden": "sipguard.cli.audit",
    "fraud": "sipguard.cli.fraud",
    "web-password": "sipguard.cli.web",
    "probe": "sipguard.cli.probe",
}


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def require(module: str, extra: str, system: str = "") -> None:
    """Import an optional part, or fail with one line saying what to install."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        apt = f" and apt-get install {system}" if system else ""
        raise CliError(
            f"{module} is not usable ({exc}): ./install.sh installs it, "
            f"or pip install 'sipguard[{extra}]'{apt}"
        ) from None


def build_parser(modules: Sequence[str] = SUBCOMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipguard",
        description="Protects Asterisk PBXes against SIP scanners, brute force, floods and fraud.",
    )
    parser.add_argument("--version", action="version", version=f"sipguard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def chosen_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The deepest subcommand parser that `args` went through (`config check` -> its parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None)
            if name in action.choices:
                return chosen_parser(action.choices[name], args)
    return parser


def _modules_for(argv: Sequence[str]) -> Sequence[str]:
    command = next((a for a in argv if not a.startswith("-")), None)
    module = COMMAND_MODULES.get(command or "")
    return (module,) if module else SUBCOMMAND_MODULES


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_modules_for(argv))
    args, extra = parser.parse_known_args(argv)
    if extra:  # the subcommand's own usage, not the top-level one, for `scan --bogus`
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except CliError as exc:
        print(f"sipguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
