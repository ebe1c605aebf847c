"""`sipguard rules list` and `sipguard rules test RULE FILE`.

`test` runs one rule over a log, line by line: the event each line became, whether the rule's
filter took it (and if not, why), and the alert it raised, with the reason. A fraud rule
(rules/fraud/<id>/) is listed beside the log rules and tested on a CDR file the same way: each
row's call event, each alert.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TextIO

from sipguard.cli.main import CliError
from sipguard.config.errors import ConfigError
from sipguard.core import Alert, Decision, Event
from sipguard.detect import Engine, RuleSpec, format_duration
from sipguard.detect.fraudrules import FraudRuleSpec
from sipguard.pipeline import Pipeline, Unjudged
from sipguard.report.render import printable


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rules", help="list detection rules, or test one on a log")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    ls = rsub.add_parser("list", help="list rules with kind, thresholds, window, grouping, profile")
    ls.add_argument("--rules", metavar="DIR", action="append", help="rules directory")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=run_list)
    t = rsub.add_parser("test", help="show, line by line, what one rule makes of a log")
    t.add_argument("rule", metavar="RULE", help="rule id (see `sipguard rules list`)")
    t.add_argument("file", metavar="FILE", help="log file, .gz, or - for stdin; CDR CSV file")
    t.add_argument("--rules", metavar="DIR", action="append", help="rules directory")
    t.add_argument("--year", type=int, help="year for dates without one (default: this year)")
    t.add_argument("--all", action="store_true", help="also print lines that gave no event")
    t.add_argument("--config", metavar="FILE", help="fraud rules: sipguard.toml with [fraud]")
    t.add_argument("--rates", metavar="CSV", help="fraud rules: rate table prefix,cost_per_minute")
    t.add_argument("--hotlist", metavar="CSV", help="fraud rules: number ranges prefix,label")
    t.set_defaults(func=run_test)


def _load(paths: list[str] | None) -> list[RuleSpec]:
    from sipguard.config.rules import load_rules

    try:
        return load_rules(paths)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _load_fraud(paths: list[str] | None) -> list[FraudRuleSpec]:
    """The shipped fraud rules (a --rules directory holds log rules)."""
    if paths is not None:
        return []
    from sipguard.config.rules import load_fraud_rules

    try:
        return load_fraud_rules()
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def fraud_rule_dict(r: FraudRuleSpec) -> dict[str, object]:
    return {
        "id": r.id,
        "description": r.description,
        "enabled": r.enabled,
        "detector": r.detector,
        "params": dict(r.params),
        "kinds": ["call_start", "call_answer", "call_end", "auth_success"],
        "group_by": "account",
        "profile": r.profile,
        "severity": r.severity,
    }


def rule_dict(r: RuleSpec) -> dict[str, object]:
    return {
        "id": r.id,
        "description": r.description,
        "enabled": r.enabled,
        "bucket": r.bucket.value,
        "threshold": r.threshold,
        "window": r.window,
        "group_by": r.group_by.value,
        "ipv4_prefix": r.ipv4_prefix,
        "ipv6_prefix": r.ipv6_prefix,
        "distinct_field": r.distinct_field,
        "kinds": sorted(k.value for k in r.kinds),
        "match": [m.describe() for m in r.matchers],
        "profile": r.profile,
        "severity": r.severity,
    }


def run_list(args: argparse.Namespace) -> int:
    log_rules, fraud = _load(args.rules), _load_fraud(args.rules)
    if args.format == "json":
        data = [rule_dict(r) for r in log_rules] + [fraud_rule_dict(r) for r in fraud]
        json.dump(data, sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from sipguard.report.text import NARROW

    width = None if sys.stdout.isatty() else 200  # pipes get whole lines, not 80 columns
    console = Console(width=width, highlight=False)
    rows = [_list_row(r) for r in log_rules] + [_fraud_row(r) for r in fraud]
    title = f"{len(rows)} rules" + (f" ({len(fraud)} fraud rules)" if fraud else "")
    if console.width < NARROW:
        # eight columns do not fit 80: one block per rule, the wide fields on lines of their own
        console.print(title, style="italic")
        for row in rows:
            rid, kind, threshold, window, group, profile, severity, events = row
            console.print(f"[bold]{escape(rid)}[/bold]  {kind}, {threshold} in {window}")
            console.print(f"    grouping {group}; profile {escape(profile)}; severity {severity}")
            console.print(escape("    events: " + events.replace("\n", "\n    ")))
        return 0
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for col in ("kind", "threshold", "window", "grouping", "profile", "severity", "events"):
        table.add_column(col, no_wrap=col != "events")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    return 0


def _list_row(r: RuleSpec) -> tuple[str, str, str, str, str, str, str, str]:
    threshold = "first event" if r.bucket.value == "trigger" else str(r.threshold)
    if r.bucket.value == "distinct":
        threshold += f" distinct {r.distinct_field or 'source'}s"
    group = r.group_by.value
    if group == "source":
        group += f" (/{r.ipv4_prefix}, /{r.ipv6_prefix})"
    match = "; ".join(m.describe() for m in r.matchers)
    return (
        r.id + ("" if r.enabled else " (disabled)"),
        r.bucket.value,
        threshold,
        format_duration(r.window),
        group,
        r.profile,
        r.severity,
        ", ".join(sorted(k.value for k in r.kinds)) + (f"\nwhere {match}" if match else ""),
    )


def _fraud_row(r: FraudRuleSpec) -> tuple[str, str, str, str, str, str, str, str]:
    """A fraud rule in the log rules' columns: its detector is its kind, its parameters its
    threshold (the window apart), grouped by account, on call events."""
    params = dict(r.params)
    window = params.pop("window", None)
    # numbers are its threshold; lists (destination types, days, countries) its filter
    threshold = ", ".join(f"{k} {v}" for k, v in params.items() if not isinstance(v, list))
    where = "; ".join(
        f"{k} {', '.join(map(str, v)) or '(none)'}"
        for k, v in params.items()
        if isinstance(v, list)
    )
    return (
        r.id + ("" if r.enabled else " (disabled)"),
        f"fraud {r.detector}",
        threshold or "-",
        format_duration(float(window)) if isinstance(window, int | float) else "-",
        "account",
        r.profile,
        r.severity,
        "calls (AMI, CDR rows)" + (f"\nwhere {where}" if where else ""),
    )


def why_not(rule: RuleSpec, event: Event) -> str | None:
    """None when the rule's filter takes the event, else the reason it does not."""
    if event.kind not in rule.kinds:
        return f"kind {event.kind.value} not watched by this rule"
    for m in rule.matchers:
        if not m(event):
            return f"filter: not ({m.describe()})"
    return None


def _event_text(e: Event) -> str:
    parts = [e.kind.value, f"ip={e.ip}" if e.ip else "ip=none"]
    for name in ("account", "target", "user_agent", "call_id"):
        value = getattr(e, name)
        if value is not None:
            parts.append(f"{name}={printable(str(value)[:60])!r}")
    parts.append(f"service={e.service.value}")
    return " ".join(parts)


def run_test(args: argparse.Namespace) -> int:
    from sipguard.cli.scan import _check_readable, _open
    from sipguard.core.asterisk import LogNormalizer

    rules = {r.id: r for r in _load(args.rules)}
    fraud = {r.id: r for r in _load_fraud(args.rules)}
    if args.rule in fraud:
        return _test_fraud(fraud[args.rule], args)
    rule = rules.get(args.rule)
    if rule is None:
        known = ", ".join([*rules, *fraud])
        raise CliError(f"{args.rule}: no such rule (known: {known})")
    rule = rule.with_overrides({"enabled": True})
    _check_readable(args.file)  # before the header: an error is then the only output
    out = sys.stdout
    shown = _Shown(rule, out)
    normalizer = LogNormalizer(default_year=args.year or time.gmtime().tm_year)
    # replay time (None): each event is judged at its own time, as `scan` does
    pipeline = Pipeline(
        normalizer, Engine([rule]), Unjudged(), on_event=shown.event, on_alert=shown.alert
    )
    print(f"rule {rule.id}: {rule.summary()}, profile {rule.profile}", file=out)
    lines = with_events = 0
    with _open(args.file) as f:
        # bounded reads: a gigabyte without a newline arrives in 1 MiB pieces, not at once
        for line_no, raw in enumerate(iter(lambda: f.readline(1 << 20), b""), start=1):
            lines += 1
            line = raw if raw.endswith(b"\n") else raw + b"\n"
            events = pipeline.normalize(line, args.file, line_no)
            if events or args.all:
                text = raw.rstrip(b"\r\n")[:200].decode("utf-8", "replace")
                print(f"{line_no}: {printable(text)}", file=out)
            with_events += bool(events)
            shown.line_no = line_no
            pipeline.events(events, None)
    tail = normalizer.flush()
    if tail:
        print("end of input (events held back for linking):", file=out)
    shown.line_no = 0
    pipeline.events(tail, None)
    print(f"{lines} lines, {with_events} gave events, {shown.alerts} alerts", file=out)
    return 0


class _Shown:
    """Prints each event the pipeline judges (with why the rule took it or not) and each alert."""

    def __init__(self, rule: RuleSpec, out: TextIO) -> None:
        self.rule, self.out = rule, out
        self.line_no = 0  # the line being fed; 0 at the end of input
        self.alerts = 0

    def event(self, e: Event) -> None:
        where = f" (from line {e.origin.line_no})" if e.origin.line_no != self.line_no else ""
        reason = why_not(self.rule, e)
        verdict = "matched" if reason is None else f"ignored: {reason}"
        if reason is None and e.ip is None and self.rule.group_by.value != "account":
            verdict += ", but has no source address: not counted"
        print(f"    event {_event_text(e)}{where}: {verdict}", file=self.out)

    def alert(self, a: Alert, decision: Decision | None) -> None:
        self.alerts += 1
        print(f"    ALERT {a.key} -> profile {a.profile}: {printable(a.reason)}", file=self.out)


def _test_fraud(rule: FraudRuleSpec, args: argparse.Namespace) -> int:
    """A fraud rule over a CDR file: each row's call event, each alert with its reason."""
    from pathlib import Path

    from sipguard.cli.scan import _check_readable
    from sipguard.fraud.samples import replay_rule

    _check_readable(args.file)  # before the header: an error is then the only output
    out = sys.stdout
    params = ", ".join(f"{k} {v}" for k, v in rule.params.items())
    head = f"rule {rule.id}: fraud detector {rule.detector} ({params}), profile {rule.profile}"
    print(head, file=out)
    count = [0]

    def event(e: Event) -> None:
        print(f"{e.origin.line_no}: event {_event_text(e)}", file=out)

    def alert(a: Alert) -> None:
        count[0] += 1
        print(f"    ALERT {a.key} -> profile {rule.profile}: {printable(a.reason)}", file=out)

    def path(p: str | None) -> Path | None:
        return Path(p) if p else None

    try:
        events, _ = replay_rule(
            rule,
            [Path(args.file)],
            path(args.config),
            path(args.rates),
            path(args.hotlist),
            on_event=event,
            on_alert=alert,
        )
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"{exc.filename}: {exc.strerror}") from None
    print(f"{len(events)} rows, {count[0]} alerts", file=out)
    return 0
