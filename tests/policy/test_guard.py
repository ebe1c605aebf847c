"""The enforcer's request parser and ban guard (pure): what a compromised parsing process may
send is refused as a whole when malformed, entry by entry when it names a protected network."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from sipguard.policy.guard import MAX_ENTRIES, MAX_TIMEOUT, BanGuard, Refused, parse_request


def ban(net: str, timeout: object = 600, family: object = None) -> dict[str, object]:
    fam = family if family is not None else (6 if ":" in net else 4)
    return {"network": net, "family": fam, "timeout": timeout}


def refused(value: object) -> str:
    with pytest.raises(Refused) as info:
        parse_request(value)
    return info.value.counter


def test_well_formed_requests_become_typed():
    req = parse_request({"op": "ban", "bans": [ban("203.0.113.7/32"), ban("2001:db8::/64", None)]})
    assert req.op == "ban"
    assert [(str(b.network), b.timeout) for b in req.bans] == [
        ("203.0.113.7/32", 600),
        ("2001:db8::/64", None),
    ]
    assert parse_request({"op": "unban", "networks": ["198.51.100.0/24"]}).networks == (
        ip_network("198.51.100.0/24"),
    )
    assert parse_request({"op": "status"}).op == "status"
    # a wide allow entry only protects more: no prefix bound there
    assert parse_request({"op": "allow", "networks": ["::/0"]}).networks == (ip_network("::/0"),)
    assert parse_request({"op": "ban", "bans": [ban("203.0.113.7/32", 60.0)]}).bans[0].timeout == 60


@pytest.mark.parametrize(
    ("value", "counter"),
    [
        ([1, 2], "malformed"),
        ("ban", "malformed"),
        ({"bans": []}, "malformed"),
        ({"op": 7}, "malformed"),
        ({"op": "flush"}, "unknown-op"),
        ({"op": "ban", "bans": [], "force": True}, "malformed"),  # no unknown fields
        ({"op": "ban", "bans": "203.0.113.7"}, "malformed"),
        ({"op": "ban", "bans": [{"network": "203.0.113.7/32", "family": 4}]}, "malformed"),
        ({"op": "ban", "bans": [{**ban("203.0.113.7/32"), "scope": "all"}]}, "malformed"),
        ({"op": "ban", "bans": [ban("0.0.0.0/0")]}, "bad-network"),
        ({"op": "ban", "bans": [ban("10.0.0.0/7")]}, "bad-network"),
        ({"op": "ban", "bans": [ban("::/0")]}, "bad-network"),
        ({"op": "ban", "bans": [ban("2001:db8::/15")]}, "bad-network"),
        ({"op": "ban", "bans": [ban("203.0.113.7/24")]}, "bad-network"),  # host bits set
        ({"op": "ban", "bans": [ban("not-an-ip")]}, "bad-network"),
        ({"op": "ban", "bans": [{"network": 5, "family": 4, "timeout": 5}]}, "bad-network"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", family=6)]}, "bad-network"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", family=True)]}, "bad-network"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", 0)]}, "bad-timeout"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", -5)]}, "bad-timeout"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", MAX_TIMEOUT + 1)]}, "bad-timeout"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", 10**30)]}, "bad-timeout"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", 1.5)]}, "bad-timeout"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", "600")]}, "bad-timeout"),
        ({"op": "ban", "bans": [ban("203.0.113.7/32", True)]}, "bad-timeout"),
        ({"op": "unban", "networks": ["x" * 10_000]}, "bad-network"),
        ({"op": "allow", "networks": ["10.0.0.0/33"]}, "bad-network"),
        ({"op": "unban", "networks": ["192.0.2.1/32"] * (MAX_ENTRIES + 1)}, "too-many"),
    ],
)
def test_malformed_requests_are_refused_with_their_counter(value, counter):
    assert refused(value) == counter


def test_guard_refuses_protected_networks_whatever_is_asked():
    own = (ip_network("198.51.100.10/32"), ip_network("2001:db8:1::5/128"))
    g = BanGuard(configured=(ip_network("192.0.2.0/24"),), own=own)
    assert g.refuse(ip_network("203.0.113.7/32")) is None
    assert g.refuse(ip_network("192.0.2.9/32")) == "allow-listed"
    assert g.refuse(ip_network("192.0.0.0/16")) == "allow-listed"  # overlaps the /24
    assert g.refuse(ip_network("127.0.0.1/32")) == "loopback"
    assert g.refuse(ip_network("::1/128")) == "loopback"
    assert g.refuse(ip_network("::ffff:127.0.0.1/128")) == "loopback"
    assert g.refuse(ip_network("169.254.3.4/32")) == "link-local"
    assert g.refuse(ip_network("fe80::1/128")) == "link-local"
    assert g.refuse(ip_network("198.51.100.10/32")) == "own-address"
    assert g.refuse(ip_network("198.51.100.0/24")) == "own-address"
    assert g.refuse(ip_network("2001:db8:1::/64")) == "own-address"
    assert g.refuse(ip_network("224.0.0.1/32")) == "multicast"


def test_runtime_entries_follow_the_parser_configured_ones_stay():
    g = BanGuard(configured=(ip_network("192.0.2.0/24"),))
    assert g.set_runtime([ip_network("203.0.113.0/28")]) == (1, 0)
    assert g.refuse(ip_network("203.0.113.5/32")) == "allow-listed"
    # `sipguard allow --remove`: the runtime entry goes; an empty list cannot drop the config
    assert g.set_runtime([]) == (0, 1)
    assert g.refuse(ip_network("203.0.113.5/32")) is None
    assert g.refuse(ip_network("192.0.2.1/32")) == "allow-listed"
    assert g.set_runtime([ip_network("192.0.2.0/24")]) == (1, 0)
    assert g.allowed_count() == 1
