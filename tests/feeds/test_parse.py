"""Feed bodies -> networks: valid entries kept, garbage counted, unusable bodies refused."""

from __future__ import annotations

import json
from ipaddress import ip_network

import pytest

from sipguard.feeds.parse import (
    FeedError,
    entry,
    go_duration,
    parse_apiban,
    parse_crowdsec,
    parse_plain,
)
from sipguard.policy.blocklist import from_network, networks, prefix_text, subtract


def nets(*xs: str):
    return [from_network(ip_network(x)) for x in xs]


def test_plain_list_comments_cidrs_and_garbage_counted():
    body = b"# VoIPBL style\n203.0.113.5\n198.51.100.0/24 ; range\n  192.0.2.7  # note\n"
    body += b"not-an-ip\n10.0.0.0/4\n127.0.0.1\n2001:db8::/48\n203.0.113.77/24\n\n"
    p = parse_plain(body, 100)
    assert [prefix_text(n) for n in p.networks] == [
        "203.0.113.5",
        "198.51.100.0/24",
        "192.0.2.7",
        "2001:db8::/48",
        "203.0.113.0/24",  # host bits cleared
    ]
    assert p.invalid == 3  # a word, a /4 (wider than any ban), loopback


def test_plain_list_cap_and_refusals():
    body = "\n".join(f"198.51.100.{i}" for i in range(1, 11)).encode()
    p = parse_plain(body, 4)
    assert len(p.networks) == 4 and p.over_cap == 6
    with pytest.raises(FeedError):
        parse_plain(b"\x00\x01junk" * 100, 10)
    with pytest.raises(FeedError):
        parse_plain(b"<html>oops</html>\n<body>503</body>\n", 10)
    assert parse_plain(b"# empty on purpose\n", 10).networks == []


def test_entry_rejects_special_and_wide():
    for bad in ("0.0.0.0/0", "::/0", "224.0.0.1", "fe80::1", "169.254.1.1", "1.2.3", "x" * 80):
        assert entry(bad) is None
    assert prefix_text(entry("2001:db8::1")) == "2001:db8::1"
    assert entry("192.0.2.010") is None and entry("192.0.2.1/33") is None
    assert prefix_text(entry("2001:db8::1/32")) == "2001:db8::/32"


def test_apiban_pages_and_no_new_bans():
    page = parse_apiban(
        json.dumps({"ipaddress": ["203.0.113.1", "junk", 5], "ID": 1234}).encode(), 9
    )
    assert page.networks == nets("203.0.113.1/32") and page.cursor == "1234" and page.invalid == 2
    done = parse_apiban(b'{"ipaddress":["no new bans"],"ID":"none"}', 9)
    assert done.no_new and not done.networks
    with pytest.raises(FeedError):
        parse_apiban(b'{"ipaddress": ["203.0.113.1"', 9)  # truncated
    with pytest.raises(FeedError):
        parse_apiban(b'{"error": "rate"}', 9)


def test_crowdsec_stream():
    body = {
        "new": [
            {"scope": "Ip", "value": "203.0.113.9", "type": "ban", "duration": "3h59m58.5s"},
            {"scope": "Range", "value": "198.51.100.0/24", "type": "ban", "duration": "10m"},
            {"scope": "Ip", "value": "203.0.113.10", "type": "captcha", "duration": "1h"},
            {"scope": "Country", "value": "XX", "type": "ban", "duration": "1h"},
            {"scope": "Ip", "value": "nope", "type": "ban", "duration": "1h"},
            {"scope": "Ip", "value": "203.0.113.11", "type": "ban", "duration": "-5s"},
        ],
        "deleted": [{"scope": "Ip", "value": "192.0.2.1", "type": "ban", "duration": "-1s"}],
    }
    d = parse_crowdsec(json.dumps(body).encode(), 100)
    assert d.new == [
        (nets("203.0.113.9")[0], 3 * 3600 + 59 * 60 + 58.5),
        (nets("198.51.100.0/24")[0], 600.0),
    ]
    assert d.deleted == nets("192.0.2.1/32") and d.skipped == 2 and d.invalid == 2
    assert parse_crowdsec(b'{"new": null, "deleted": null}', 5).new == []
    with pytest.raises(FeedError):
        parse_crowdsec(b"[1,2]", 5)


def test_go_duration():
    assert go_duration("167h59m58.123s") == pytest.approx(167 * 3600 + 59 * 60 + 58.123)
    assert go_duration("1m30s") == 90 and go_duration("-2s") == -2
    for bad in ("", "5", "1x", "h", None, "1h" * 30):
        assert go_duration(bad) is None


def test_subtract_drops_and_narrows():
    entries = nets(
        "10.0.0.0/8", "10.1.2.3/32", "198.51.100.7/32", "203.0.113.0/24", "2001:db8::/32"
    )
    allowed = [ip_network(x) for x in ("10.1.2.0/24", "198.51.100.0/24", "2001:db8:1::/48")]
    out = networks(subtract(entries, allowed))
    # the /8 is cut around the allowed /24 (16 pieces), the /32 inside it and the allowed one go
    v4 = [n for n in out if n.version == 4]
    assert ip_network("203.0.113.0/24") in out
    assert not any(n.overlaps(a) for n in out for a in allowed if n.version == a.version)
    covered = sum(n.num_addresses for n in v4 if n.subnet_of(ip_network("10.0.0.0/8")))
    assert covered == 2**24 - 256
    assert sum(n.num_addresses for n in out if n.version == 6) == 2**96 - 2**80
    # no overlaps: the interval set would refuse them
    for i, a in enumerate(out):
        for b in out[i + 1 :]:
            assert a.version != b.version or not a.overlaps(b)
