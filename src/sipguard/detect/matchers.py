"""Declarative matchers on Event fields, built from plain data (a TOML table).

A matcher is `{field = "...", op = "...", value(s) = ...}`; the ops are a closed set (eq, in,
regex, cidr, exists, contains_any, not). There is no expression language: each op is a small
class, so a rule file can never run code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from ipaddress import ip_network
from operator import attrgetter

from sipguard.core.alerts import Network
from sipguard.core.events import Event, IPAddress

#: Event fields a matcher may look at.
FIELDS = (
    "kind",
    "service",
    "ip",
    "port",
    "transport",
    "account",
    "target",
    "user_agent",
    "call_id",
    "detail",
)

#: Regexes run on attacker-controlled text: keep the pattern and the subject bounded.
MAX_PATTERN = 500
MAX_SUBJECT = 4096
MAX_VALUES = 10_000


class RuleError(ValueError):
    """A rule (or one of its parts) is invalid. `key` is the dotted path inside the rule."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}")


def field_text(event: Event, name: str) -> str | None:
    """The field as text (None when absent). Enums give their value, addresses their string."""
    value = getattr(event, name)
    if value is None:
        return None
    if name in ("kind", "service"):
        return str(value.value)
    return str(value)


#: Fields that hold text (or None) already: their text is the value itself.
_TEXT_FIELDS = frozenset({"transport", "account", "target", "user_agent", "call_id", "detail"})
#: Results remembered per subject text and matcher: user agents and targets repeat (attack
#: tools, dial plans), and the engine asks once per event. Cleared when full.
_RESULTS_MAX = 16384
_RESULT_TEXT_MAX = 256  # longer subjects are searched every time: the memory stays ~4 MB


def _search_test(name: str, rx: re.Pattern[str]) -> Callable[[Event], bool]:
    """`rx.search` on the field's text (at most MAX_SUBJECT characters); False without one."""
    results: dict[str, bool] = {}
    text_of = field_getter(name)

    def test(e: Event) -> bool:
        text = text_of(e)
        if text is None:
            return False
        found = results.get(text)
        if found is None:
            found = rx.search(text[:MAX_SUBJECT]) is not None
            if len(text) <= _RESULT_TEXT_MAX:
                if len(results) >= _RESULTS_MAX:
                    results.clear()
                results[text] = found
        return found

    return test


def field_getter(name: str) -> Callable[[Event], str | None]:
    """`field_text(event, name)` as a function of the event, the attribute itself for text."""
    if name in _TEXT_FIELDS:
        getter: Callable[[Event], str | None] = attrgetter(name)
        return getter
    return partial(_field_text_of, name)


def _field_text_of(name: str, event: Event) -> str | None:
    return field_text(event, name)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One test on one field; `describe()` says what it checks, for `rules list/test`."""

    field: str
    op: str
    test: Callable[[Event], bool]
    text: str

    def __call__(self, event: Event) -> bool:
        return self.test(event)

    def describe(self) -> str:
        return self.text


def build_matcher(spec: object, key: str, lists: Mapping[str, Sequence[str]]) -> Matcher:
    """Build a matcher from a TOML table. `lists` resolves `list = "name"` (shipped data)."""
    if not isinstance(spec, Mapping):
        raise RuleError(key, "a matcher must be a table")
    op = spec.get("op")
    if op == "not":
        inner = build_matcher(spec.get("match"), f"{key}.match", lists)
        return Matcher(inner.field, "not", lambda e: not inner(e), f"not ({inner.text})")
    name = spec.get("field")
    if name not in FIELDS:
        raise RuleError(f"{key}.field", f"unknown field {name!r} (one of {', '.join(FIELDS)})")
    assert isinstance(name, str)
    if op == "exists":
        return Matcher(name, op, lambda e: getattr(e, name) is not None, f"{name} exists")
    if op == "eq":
        want = _one_value(spec, key)
        return Matcher(name, op, lambda e: field_text(e, name) == want, f"{name} == {want!r}")
    if op == "in":
        values = frozenset(_values(spec, key, lists))
        return Matcher(
            name, op, lambda e: field_text(e, name) in values, f"{name} in {_short(values)}"
        )
    if op == "contains_any":
        return _contains_any(name, spec, key, lists)
    if op == "regex":
        return _regex(name, spec, key)
    if op == "cidr":
        return _cidr(name, spec, key, lists)
    raise RuleError(
        f"{key}.op", f"unknown op {op!r} (eq, in, regex, cidr, exists, contains_any, not)"
    )


def _one_value(spec: Mapping[str, object], key: str) -> str:
    value = spec.get("value")
    if not isinstance(value, str | int):
        raise RuleError(f"{key}.value", "needs a string or integer value")
    return str(value)


def _values(spec: Mapping[str, object], key: str, lists: Mapping[str, Sequence[str]]) -> list[str]:
    """`values = [...]` inline, or `list = "name"` for a shipped data list."""
    if "list" in spec:
        name = spec["list"]
        if not isinstance(name, str) or name not in lists:
            known = ", ".join(sorted(lists)) or "none"
            raise RuleError(f"{key}.list", f"unknown data list {name!r} (known: {known})")
        out = [str(v) for v in lists[name]]
    else:
        raw = spec.get("values")
        if not isinstance(raw, list) or not raw:
            raise RuleError(f"{key}.values", "needs a non-empty list (or list = NAME)")
        out = [str(v) for v in raw]
    if len(out) > MAX_VALUES:
        raise RuleError(key, f"more than {MAX_VALUES} values")
    return out


def _short(values: frozenset[str] | Sequence[str]) -> str:
    items = sorted(values)
    shown = ", ".join(items[:5])
    return f"[{shown}{', ...' if len(items) > 5 else ''}] ({len(items)})"


def _contains_any(
    name: str, spec: Mapping[str, object], key: str, lists: Mapping[str, Sequence[str]]
) -> Matcher:
    """Case-insensitive substring-in-list, the way scanner signatures are matched."""
    needles = sorted({v.lower() for v in _values(spec, key, lists) if v})
    if not needles:
        raise RuleError(key, "contains_any needs at least one non-empty value")
    label = f"list {spec['list']!r}" if "list" in spec else _short(needles)
    # one alternation of literal needles: a single C-level search instead of a Python loop
    rx = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
    test = _search_test(name, rx)
    return Matcher(name, "contains_any", test, f"{name} contains any of {label}")


def _regex(name: str, spec: Mapping[str, object], key: str) -> Matcher:
    pattern = spec.get("value")
    if not isinstance(pattern, str) or not pattern:
        raise RuleError(f"{key}.value", "regex needs a non-empty pattern string")
    if len(pattern) > MAX_PATTERN:
        raise RuleError(f"{key}.value", f"pattern longer than {MAX_PATTERN} characters")
    flags = re.IGNORECASE if spec.get("ignore_case") is True else 0
    try:
        rx = re.compile(pattern, flags)
    except re.error as exc:
        raise RuleError(f"{key}.value", f"bad regex: {exc}") from None

    return Matcher(name, "regex", _search_test(name, rx), f"{name} =~ /{pattern}/")


def _cidr(
    name: str, spec: Mapping[str, object], key: str, lists: Mapping[str, Sequence[str]]
) -> Matcher:
    if name != "ip":
        raise RuleError(f"{key}.field", "cidr only applies to the ip field")
    nets: list[Network] = []
    for i, raw in enumerate(_values(spec, key, lists)):
        try:
            nets.append(ip_network(raw, strict=False))
        except ValueError:
            raise RuleError(f"{key}.values[{i}]", f"not a network: {raw!r}") from None

    def test(e: Event) -> bool:
        ip: IPAddress | None = e.ip
        return ip is not None and any(ip.version == n.version and ip in n for n in nets)

    return Matcher(name, "cidr", test, f"ip in {_short([str(n) for n in nets])}")
