"""`sipguard audit CONFIG_DIR` and `sipguard harden CONFIG_DIR --out DIR`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sipguard.audit.model import Finding, Severity
from sipguard.audit.parser import TOP_LEVEL
from sipguard.audit.report import score, to_json, to_sarif, write_text
from sipguard.audit.writer import audit_dir, harden_dir
from sipguard.cli.main import CliError

SEVERITIES = [s.label for s in Severity]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = sub.add_parser(
        "audit",
        help="audit an Asterisk config directory",
        description="Audit an Asterisk configuration directory (e.g. /etc/asterisk) for every "
        "weakness the hardening guides name: guest access, weak or numeric credentials, open "
        "AMI/HTTP, missing ACLs, dialplan paths from guest contexts to paid destinations. "
        "Exit 0: done (or nothing at --fail-on's level), 1: a finding at --fail-on's level, "
        "2: error (not a directory, no Asterisk configuration in it).",
    )
    audit.add_argument("config_dir", metavar="CONFIG_DIR", help="e.g. /etc/asterisk")
    audit.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    audit.add_argument(
        "--fail-on",
        metavar="SEVERITY",
        choices=SEVERITIES,
        help="exit 1 when a finding at or above SEVERITY exists",
    )
    audit.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    audit.set_defaults(func=run_audit)

    harden = sub.add_parser(
        "harden",
        help="write a hardened copy of an Asterisk config directory",
        description="Write a hardened copy of an Asterisk configuration directory (or, with "
        "--in-place, edit it, keeping the originals), with a diff and the generated credentials, "
        "then audit the result.",
    )
    harden.add_argument("config_dir", metavar="CONFIG_DIR", help="e.g. /etc/asterisk")
    harden.add_argument(
        "--out",
        metavar="DIR",
        help="hardened copy, hardening.diff and credentials.csv go here (required unless "
        "--in-place; then only the diff and credentials, default CONFIG_DIR-sipguard-TIME)",
    )
    harden.add_argument(
        "--logs",
        nargs="+",
        default=[],
        metavar="FILE",
        help="Asterisk logs: addresses that registered become ACL suggestions",
    )
    harden.add_argument(
        "--in-place",
        action="store_true",
        help="edit CONFIG_DIR itself (originals kept as FILE.sipguard-bak)",
    )
    harden.set_defaults(func=run_harden)


def _config_dir(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise CliError(f"{text}: expected a directory of Asterisk configuration (/etc/asterisk)")
    if not path.is_dir():
        raise CliError(f"{text}: config directory not found")
    return path


def _audit(path: Path) -> list[Finding]:
    """The findings, or a CliError when the directory holds no Asterisk configuration at all: a
    wrong path must not read as a nearly clean PBX."""
    tree, findings = audit_dir(path)
    if not tree.configs:
        raise CliError(f"{path}: no Asterisk configuration here (none of {', '.join(TOP_LEVEL)})")
    return findings


def run_audit(args: argparse.Namespace) -> int:
    path = _config_dir(args.config_dir)
    findings = _audit(path)
    if args.format == "json":
        print(to_json(findings))
    elif args.format == "sarif":
        print(to_sarif(findings, str(path.resolve())))
    else:
        colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        write_text(findings, sys.stdout, colour)
    if args.fail_on:
        threshold = Severity.parse(args.fail_on)
        return 1 if any(f.severity >= threshold for f in findings) else 0
    return 0


def run_harden(args: argparse.Namespace) -> int:
    src = _config_dir(args.config_dir)
    _audit(src)
    if args.out is None and not args.in_place:
        raise CliError("--out DIR is required (or --in-place to edit CONFIG_DIR itself)")
    out = Path(args.out or f"{src.resolve()}-sipguard-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CliError(f"{out}: --out must be a new or empty directory")
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise CliError(f"{out}: --out must not be inside CONFIG_DIR")
    for log in args.logs:
        if not Path(log).is_file():
            raise CliError(f"{log}: log file not found")
    result = harden_dir(src, out, args.logs, args.in_place)
    where = src if args.in_place else out
    print(f"hardened {len(result.changed)} files in {where}")
    print(f"diff: {result.diff_path}")
    print(f"credentials ({len(result.plan.credentials)}): {result.credentials_path} (mode 0600)")
    for note in result.plan.notes:
        print(f"note: {note}")
    after = _audit(where)
    high = [f for f in after if f.severity >= Severity.HIGH]
    print(f"audit after hardening: score {score(after)}/100, {len(high)} high or critical")
    return 0
