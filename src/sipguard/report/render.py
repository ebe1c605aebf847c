"""Renders a ScanReport as text (rich tables), JSON (one object), CSV (one row per attacker) or
HTML (a self-contained page with charts, report/html.py)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from sipguard.core.alerts import Decision
from sipguard.detect import format_duration
from sipguard.detect.sourcekeys import network_text
from sipguard.report.aggregate import (
    COUNT_SOURCES,
    KEEP_SOURCES,
    AccountUnderAttack,
    Attacker,
    ScanReport,
    shown_action,
)

FORMATS = ("text", "json", "csv", "html")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Attacker text for a terminal: control characters (ESC sequences, CR) shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def render(report: ScanReport, fmt: str, out: IO[str]) -> None:
    if fmt == "json":
        render_json(report, out)
    elif fmt == "csv":
        render_csv(report, out)
    elif fmt == "html":
        from sipguard.report.html import render_html

        render_html(report, out)
    else:
        from sipguard.report.text import render_text  # rich, imported only for text output

        render_text(report, out)


def render_json(report: ScanReport, out: IO[str]) -> None:
    """The same text as `json.dump(report.to_dict(), out, indent=2)` plus a newline, written one
    attacker/account at a time: tens of thousands of attackers as dicts at once cost ~20 MB."""
    sep = "{"
    for key, value in report.to_parts():
        out.write(f"{sep}\n  {_encode_str(key)}: ")
        sep = ","
        if not isinstance(value, Iterator):
            out.write(indented_json(value, "\n  "))
            continue
        inner = "["
        for item in value:
            if isinstance(item, Attacker):
                text = attacker_json(item, "\n    ")
            elif isinstance(item, AccountUnderAttack):
                text = account_json(item, "\n    ")
            else:
                text = indented_json(item, "\n    ")
            out.write(inner + "\n    " + text)
            inner = ","
        out.write("[]" if inner == "[" else "\n  ]")
    out.write("\n}\n")


# json.dumps(indent=2) runs the pure-Python encoder (3.11's C encoder has no indent): it was 40%
# of a 1M-line scan. indented_json writes the same text with json's C string encoder: a list of
# strings is one C-level join, a dict one loop over its members.
_encode_str = json.encoder.encode_basestring_ascii  # the C function json itself uses


def _float_text(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


#: Plain scalars as json writes them (json's floatstr, int.__repr__ for int)
_SCALAR_TEXT: dict[type, Callable[[Any], str]] = {
    str: _encode_str,
    int: int.__repr__,
    float: _float_text,
    bool: lambda b: "true" if b else "false",
    type(None): lambda _: "null",
}


#: '"key": ' per dict key seen, the first few hundred (a report has a few dozen distinct keys)
_KEY_HEADS: dict[str, str] = {}


def indented_json(value: object, nl: str = "\n") -> str:
    """Exactly `json.dumps(value, indent=2)` with every newline replaced by `nl` (a newline and
    the indentation of the line the value starts on)."""
    kind = type(value)
    texts = _SCALAR_TEXT
    scalar = texts.get(kind)
    if scalar is not None:
        return scalar(value)
    inner = nl + "  "
    sep = "," + inner
    if kind is list:
        assert isinstance(value, list)
        if not value:
            return "[]"
        try:
            body = sep.join(map(_encode_str, value))  # raises TypeError unless all are str
        except TypeError:
            body = sep.join([indented_json(m, inner) for m in value])
        return "[" + inner + body + nl + "]"
    if kind is dict:
        assert isinstance(value, dict)
        if not value:
            return "{}"
        parts = []
        heads = _KEY_HEADS
        try:
            for k, m in value.items():
                head = heads.get(k)
                if head is None:
                    head = _encode_str(k) + ": "  # TypeError for a key not a str
                    if len(heads) < 256:  # report keys are few; attacker text is not cached
                        heads[k] = head
                text_of = texts.get(type(m))
                parts.append(
                    head + (text_of(m) if text_of is not None else indented_json(m, inner))
                )
        except TypeError:
            pass  # json converts such keys: its own text below
        else:
            return "{" + inner + sep.join(parts) + nl + "}"
    # anything unusual (tuples, subclasses, non-str keys): json's own text
    return json.dumps(value, indent=2).replace("\n", nl)


def _str_list(items: list[str] | tuple[str, ...], nl: str) -> str:
    """indented_json of a list of str (TypeError for anything else in it)."""
    if len(items) == 1:  # most attackers: one address, account, agent, service, rule
        return "[" + nl + "  " + _encode_str(items[0]) + nl + "]"
    if not items:
        return "[]"
    inner = nl + "  "
    return "[" + inner + ("," + inner).join(map(_encode_str, items)) + nl + "]"


def _count_dict(counts: dict[str, int], nl: str) -> str:
    """indented_json of a dict of str to int, sorted by key (TypeError otherwise)."""
    inner = nl + "  "
    if len(counts) == 1:
        for k, n in counts.items():
            if type(n) is not int:
                raise TypeError(n)
            return "{" + inner + _encode_str(k) + ": " + int.__repr__(n) + nl + "}"
    if not counts:
        return "{}"
    texts = _SCALAR_TEXT
    body = ("," + inner).join(
        [_encode_str(k) + ": " + texts[type(n)](n) for k, n in sorted(counts.items())]
    )
    return "{" + inner + body + nl + "}"


def _number(value: float) -> str:
    """A float or an int as json writes it (TypeError for any other type, bool included)."""
    kind = type(value)
    if kind is float:
        text = float.__repr__(value)
        # "inf", "-inf", "nan" are the only reprs not ending in a digit
        return text if text[-1] not in "fn" else _float_text(value)
    if kind is int:
        return repr(value)
    raise TypeError(value)


def attacker_json(a: Attacker, nl: str = "\n") -> str:
    """Exactly `indented_json(a.to_dict(), nl)`, without building the dict: a scan of tens of
    thousands of sources writes as many attackers, and the generic walk took ~18 us each."""
    i = nl + "  "  # a member's line
    try:
        accounts = a.accounts
        if len(accounts) > 1:
            ordered = sorted(accounts, key=lambda x: (-accounts[x], x))
        else:
            ordered = list(accounts)
        decisions = a.decisions
        d = a.decision
        rules = [decisions[0].rule] if len(decisions) == 1 else sorted({x.rule for x in decisions})
        addresses = a.addresses
        return (
            f'{{{i}"ip": {_encode_str(a.ip)},'
            f'{i}"addresses": '
            f"{_str_list(sorted(addresses) if addresses else [a.ip], i)},"
            f'{i}"first_seen": {_number(a.first)},'
            f'{i}"last_seen": {_number(a.last)},'
            f'{i}"events": {_number(a.events)},'
            f'{i}"kinds": {_count_dict(a.kinds, i)},'
            f'{i}"accounts": {_str_list(ordered, i)},'
            f'{i}"user_agents": {_str_list(sorted(a.user_agents), i)},'
            f'{i}"services": {_str_list(sorted(a.services), i)},'
            f'{i}"auth_successes": {_number(a.successes)},'
            f'{i}"decision": {"null" if d is None else _decision_json(d, i)},'
            f'{i}"rules": {_str_list(rules, i)},'
            f'{i}"lines": {_str_list(a.lines, i)}{nl}}}'
        )
    except (KeyError, TypeError):
        return indented_json(a.to_dict(), nl)  # a value of an unusual type: the generic walk


def _decision_json(d: Decision, nl: str) -> str:
    """indented_json(decision_dict(d), nl) (TypeError for a value of an unusual type)."""
    i = nl + "  "
    level = d.level
    duration = d.duration
    action, simulated = shown_action(d)
    return (
        f'{{{i}"action": {_encode_str(action)},'
        f'{i}"simulated": {"true" if simulated else "false"},'
        f'{i}"network": {_encode_str(network_text(d.network))},'
        f'{i}"rule": {_encode_str(d.rule)},'
        f'{i}"reason": {_encode_str(d.reason)},'
        f'{i}"level": {_number(level)},'
        f'{i}"duration": {"null" if duration is None else _number(duration)},'
        f'{i}"duration_text": {_encode_str(format_duration(duration))},'
        f'{i}"time": {_number(d.start)}{nl}}}'
    )


def account_json(acc: AccountUnderAttack, nl: str = "\n") -> str:
    """Exactly `indented_json(acc.to_dict(), nl)`, without building the dict."""
    i = nl + "  "
    try:
        count = len(acc.sources)
        alerts = [{"rule": x.rule, "reason": x.reason, "time": x.time} for x in acc.alerts]
        return (
            f'{{{i}"account": {_encode_str(acc.account)},'
            f'{i}"first_seen": {_number(acc.first)},'
            f'{i}"last_seen": {_number(acc.last)},'
            f'{i}"events": {_number(acc.events)},'
            f'{i}"kinds": {_count_dict(acc.kinds, i)},'
            f'{i}"distinct_sources": {count},'
            f'{i}"distinct_sources_capped": {"true" if count >= COUNT_SOURCES else "false"},'
            f'{i}"sources": {_str_list(sorted(acc.sources)[:KEEP_SOURCES], i)},'
            f'{i}"alerts": {indented_json(alerts, i)}{nl}}}'
        )
    except (KeyError, TypeError):
        return indented_json(acc.to_dict(), nl)


CSV_FIELDS = [
    "ip",
    "first_seen",
    "last_seen",
    "events",
    "kinds",
    "accounts",
    "user_agents",
    "action",
    "rule",
    "ban",
    "level",
    "reason",
    "simulated",
]


def render_csv(report: ScanReport, out: IO[str]) -> None:
    import csv  # here: only CSV output needs it; start-up time counts

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for a in report.attackers() + report.below_threshold():
        d = a.decision
        writer.writerow(
            [
                a.ip,
                when(a.first),
                when(a.last),
                a.events,
                ";".join(f"{k}={n}" for k, n in sorted(a.kinds.items())),
                ";".join(sorted(a.accounts)),
                ";".join(sorted(a.user_agents)),
                shown_action(d)[0] if d else "",
                d.rule if d else "",
                _ban(a),
                d.level if d else "",
                _safe(d.reason) if d else "",
                ("yes" if shown_action(d)[1] else "no") if d else "",
            ]
        )


def _safe(text: str) -> str:
    """No spreadsheet formulas from attacker-controlled text."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _ban(a: Attacker) -> str:
    d = a.decision
    if d is None:
        return ""
    return format_duration(d.duration)
