"""Loads detection rules: `rules/<id>/rule.toml`, shipped in the package or from directories.

`load_rules(paths=None, overrides=None)` returns validated `RuleSpec`s. Overrides come from the
config's `[rules.<id>]` tables (threshold, window, enabled, profile, severity, prefixes). Every
problem raises ConfigError(file, key, reason): one line naming the rule file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from sipguard.config.errors import ConfigError
from sipguard.data import read_lines
from sipguard.detect import RuleError, RuleSpec, rule_from_dict
from sipguard.detect.fraudrules import FRAUD_DETECTORS, FraudRuleSpec, fraud_rule_from_dict

MAX_RULE_FILE = 256 * 1024
OVERRIDES_SOURCE = "sipguard.toml"
# The fraud rules live one level down, so the log rules' loader never meets them.
FRAUD_RULES = Path(__file__).resolve().parent.parent / "rules" / "fraud"


def shipped_rules_dir() -> Path:
    """The rules shipped in the package (installed as files; see sipguard.data.HERE)."""
    return Path(__file__).resolve().parent.parent / "rules"


def data_lists() -> dict[str, list[str]]:
    """Named data lists a rule may use with `list = "NAME"` (shipped under sipguard/data)."""
    return {"scanners": read_lines("scanners.txt")}


def rule_dirs(paths: Sequence[str | Path] | None = None) -> list[tuple[str, Path]]:
    """(display path, dir) of every rule directory, sorted by id. A path may be a rules
    directory (holding <id>/rule.toml) or one rule directory (holding rule.toml)."""
    roots: list[tuple[str, Path]]
    if paths is None:
        roots = [("sipguard/rules", shipped_rules_dir())]
    else:
        roots = []
        for p in paths:
            path = Path(p)
            if not path.is_dir():
                raise ConfigError(str(p), "", "not a directory of rules")
            roots.append((str(p), path))
    out: list[tuple[str, Path]] = []
    for label, root in roots:
        if root.joinpath("rule.toml").is_file():
            out.append((label, root))
            continue
        for child in sorted(root.iterdir(), key=lambda c: c.name):
            if child.is_dir() and child.joinpath("rule.toml").is_file():
                out.append((f"{label}/{child.name}", child))
    return out


def _read_rule_file(label: str, directory: Path) -> dict[str, object]:
    file = f"{label}/rule.toml"
    try:
        raw = directory.joinpath("rule.toml").read_bytes()
    except OSError as exc:
        raise ConfigError(file, "", exc.strerror or str(exc)) from None
    if len(raw) > MAX_RULE_FILE:
        raise ConfigError(file, "", f"larger than {MAX_RULE_FILE} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(file, "", f"not valid TOML: {exc}") from None
    return data


def load_rule_file(label: str, directory: Path, lists: Mapping[str, list[str]]) -> RuleSpec:
    data = _read_rule_file(label, directory)
    try:
        return rule_from_dict(data, lists)
    except RuleError as exc:
        raise ConfigError(f"{label}/rule.toml", exc.key, exc.reason) from None


def fraud_rule_dirs(paths: Sequence[str | Path] | None = None) -> list[tuple[str, Path]]:
    """The fraud rules' directories: `rules/fraud/<id>/` (shipped), or under `paths`."""
    if paths is None:
        return [(f"sipguard/rules/fraud/{d.name}", d) for _, d in rule_dirs([FRAUD_RULES])]
    return rule_dirs(paths)


def load_fraud_rule_file(label: str, directory: Path) -> FraudRuleSpec:
    data = _read_rule_file(label, directory)
    try:
        return fraud_rule_from_dict(data)
    except RuleError as exc:
        raise ConfigError(f"{label}/rule.toml", exc.key, exc.reason) from None


def load_fraud_rules(paths: Sequence[str | Path] | None = None) -> list[FraudRuleSpec]:
    """Every fraud rule (rules/fraud/<id>/rule.toml), in the detectors' order."""
    rules = [load_fraud_rule_file(label, d) for label, d in fraud_rule_dirs(paths)]
    order = list(FRAUD_DETECTORS)
    return sorted(rules, key=lambda r: order.index(r.detector))


def load_rules(
    paths: Sequence[str | Path] | None = None,
    overrides: Mapping[str, object] | None = None,
    *,
    overrides_source: str = OVERRIDES_SOURCE,
    only: Iterable[str] | None = None,
) -> list[RuleSpec]:
    """All rules (enabled or not: the Engine skips disabled ones), overrides applied."""
    lists = data_lists()
    rules: dict[str, RuleSpec] = {}
    files: dict[str, str] = {}
    for label, directory in rule_dirs(paths):
        rule = load_rule_file(label, directory, lists)
        if rule.id in rules:
            raise ConfigError(f"{label}/rule.toml", "id", f"duplicate rule id {rule.id!r}")
        rules[rule.id] = rule
        files[rule.id] = f"{label}/rule.toml"
    if not rules:
        raise ConfigError(", ".join(str(p) for p in paths or ()), "", "no rules found")
    for rule_id, table in (overrides or {}).items():
        key = f"rules.{rule_id}"
        if rule_id not in rules:
            raise ConfigError(overrides_source, key, f"no such rule (known: {', '.join(rules)})")
        if not isinstance(table, Mapping):
            raise ConfigError(overrides_source, key, "needs a table")
        try:
            rules[rule_id] = rules[rule_id].with_overrides(table)
        except RuleError as exc:
            raise ConfigError(overrides_source, f"{key}.{exc.key}", exc.reason) from None
    if only is not None:
        wanted = list(only)
        missing = [w for w in wanted if w not in rules]
        if missing:
            raise ConfigError(missing[0], "", f"no such rule (known: {', '.join(rules)})")
        return [rules[w] for w in wanted]
    return list(rules.values())


__all__ = [
    "data_lists",
    "fraud_rule_dirs",
    "load_fraud_rule_file",
    "load_fraud_rules",
    "load_rule_file",
    "load_rules",
    "rule_dirs",
    "shipped_rules_dir",
]
