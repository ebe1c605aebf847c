"""`[[feeds]]`: valid tables load; each mistake is one line naming the file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.config.errors import ConfigError
from sipguard.config.settings import load_settings, render_toml
from sipguard.daemon.feeds import build_feeds, read_key


def write(tmp: Path, text: str) -> Path:
    p = tmp / "sipguard.toml"
    p.write_text(text)
    return p


GOOD = """
[[feeds]]
name = "voipbl"
kind = "plain"
url = "https://voipbl.org/update/"
interval = 3600
[[feeds]]
name = "apiban"
kind = "apiban"
key_file = "/etc/sipguard/apiban.key"
"""


def test_good_feeds_load_and_render(tmp_path):
    s = load_settings(write(tmp_path, GOOD))
    feeds = build_feeds(s)
    assert [(f.name, f.kind, f.interval) for f in feeds] == [
        ("voipbl", "plain", 3600.0),
        ("apiban", "apiban", 300.0),
    ]
    assert feeds[1].url == "https://apiban.org" and feeds[1].origin == "blocklist:apiban"
    text = render_toml(s.to_dict())
    assert "[[feeds]]" in text and 'name = "voipbl"' in text


P = '[[feeds]]\nname = "a"\nkind = "plain"\nfile = "/x"\n'


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        ('feeds = "x"', "feeds", "array of tables"),
        ('[[feeds]]\nname = "Bad-Name"\nkind = "plain"', "feeds[0].name", "lower-case"),
        ('[[feeds]]\nname = "a"\nkind = "rss"', "feeds.a.kind", "one of"),
        ('[[feeds]]\nname = "a"\nkind = "plain"', "feeds.a.url", "exactly one of"),
        ('[[feeds]]\nname = "a"\nkind = "plain"\nurl = "ftp://x/"', "feeds.a.url", "http(s)"),
        ('[[feeds]]\nname = "a"\nkind = "apiban"', "feeds.a.key_file", "key in a file"),
        (P + "interval = 0", "feeds.a.interval", "between"),
        (P + 'max_entries = "9"', "feeds.a.max_entries", "expected int"),
        (P + "colour = 1", "feeds.a.colour", "unknown key"),
        (P + P, "feeds.a", "second feed"),
    ],
)
def test_bad_feeds_are_one_line_errors(tmp_path, body, key, reason):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as err:
        build_feeds(load_settings(path))
    assert err.value.file == str(path) and err.value.key == key
    assert reason in err.value.reason and "\n" not in str(err.value)


def test_key_file_errors(tmp_path):
    path = write(tmp_path, GOOD)
    feed = build_feeds(load_settings(path))[1]
    with pytest.raises(ConfigError, match=r"feeds.apiban.key_file: /etc/sipguard/apiban.key"):
        read_key(feed, str(path))
    keyfile = tmp_path / "k"
    keyfile.write_text("abc def\n")
    from dataclasses import replace

    with pytest.raises(ConfigError, match="letters and digits"):
        read_key(replace(feed, key_file=str(keyfile)), str(path))
    keyfile.write_text("0123abcd-ef\n")
    assert read_key(replace(feed, key_file=str(keyfile)), str(path)) == "0123abcd-ef"
