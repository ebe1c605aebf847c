"""config.rules: loading rule directories, overrides, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.config.errors import ConfigError
from sipguard.config.rules import load_rules

GOOD = """
id = "my-rule"
description = "test"
[filter]
kinds = ["wrong_password"]
[[filter.match]]
field = "user_agent"
op = "contains_any"
list = "scanners"
[bucket]
type = "counter"
threshold = 3
window = "1m"
"""


def write_rule(root: Path, name: str, text: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "rule.toml").write_text(text)
    return d


def test_shipped_rules_and_overrides() -> None:
    rules = {r.id: r for r in load_rules()}
    assert rules["password-guessing"].threshold == 5
    changed = {
        r.id: r
        for r in load_rules(
            overrides={"password-guessing": {"threshold": 10, "window": "2m", "enabled": False}}
        )
    }
    pg = changed["password-guessing"]
    assert (pg.threshold, pg.window, pg.enabled) == (10, 120.0, False)
    assert changed["acl-denials"] == rules["acl-denials"]


def test_rule_dir_and_data_list(tmp_path: Path) -> None:
    write_rule(tmp_path, "my-rule", GOOD)
    [rule] = load_rules([tmp_path])
    assert rule.id == "my-rule" and "scanners" in rule.matchers[0].describe()
    [again] = load_rules([tmp_path / "my-rule"])  # one rule's own directory works too
    assert again.id == "my-rule"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (GOOD.replace('"counter"', '"bogus"'), "bucket.type", "needs one of"),
        (
            GOOD.replace('list = "scanners"', 'list = "nope"'),
            "filter.match[0].list",
            "unknown data list",
        ),
        (GOOD.replace("threshold = 3", "threshold = 'x'"), "bucket.threshold", "integer"),
        (GOOD + "\n[bucket.extra]\n", "bucket.extra", "unknown key"),
        ("id = [", "", "not valid TOML"),
    ],
)
def test_bad_rule_file_one_line_error(tmp_path: Path, text: str, key: str, reason: str) -> None:
    write_rule(tmp_path, "bad", text)
    with pytest.raises(ConfigError) as exc:
        load_rules([tmp_path])
    err = exc.value
    assert err.file == f"{tmp_path}/bad/rule.toml" and err.key == key and reason in err.reason
    assert "\n" not in str(err) and str(err).startswith(str(tmp_path))


def test_override_errors_name_config_key() -> None:
    with pytest.raises(ConfigError) as exc:
        load_rules(overrides={"no-such-rule": {"threshold": 3}}, overrides_source="/etc/sg.toml")
    assert (exc.value.file, exc.value.key) == ("/etc/sg.toml", "rules.no-such-rule")
    with pytest.raises(ConfigError) as exc:
        load_rules(overrides={"password-guessing": {"threshold": 0}})
    assert exc.value.key == "rules.password-guessing.threshold"
    with pytest.raises(ConfigError) as exc:
        load_rules(overrides={"password-guessing": {"colour": "red"}})
    assert exc.value.key == "rules.password-guessing.colour"


def test_duplicate_ids_and_missing_dir(tmp_path: Path) -> None:
    write_rule(tmp_path, "a", GOOD)
    write_rule(tmp_path, "b", GOOD)
    with pytest.raises(ConfigError, match="duplicate rule id"):
        load_rules([tmp_path])
    with pytest.raises(ConfigError, match="not a directory"):
        load_rules([tmp_path / "missing"])
