"""The enforcer's side of feeds: hostile `feed` requests are refused whole, good ones are
narrowed around the networks the enforcer protects (whatever the parser sent)."""

from __future__ import annotations

import json
from ipaddress import ip_network

from sipguard.actions import DryRunFirewall
from sipguard.daemon.privsep import EnforcerServer
from sipguard.policy.guard import BanGuard


def server() -> tuple[EnforcerServer, DryRunFirewall]:
    fw = DryRunFirewall()
    guard = BanGuard(configured=(ip_network("198.51.100.0/25"),))
    own = (ip_network("203.0.113.7/32"),)
    return EnforcerServer(fw, guard, own=lambda: own, clock=lambda: 1000.0), fw


def ask(srv: EnforcerServer, req: object) -> dict:
    return srv.handle(json.dumps(req).encode())


def test_feed_requests_refused_whole():
    srv, fw = server()
    assert ask(srv, {"op": "feeds", "names": ["a"]})["ok"]
    bad = [
        ({"op": "feed", "name": "a", "networks": ["0.0.0.0/0"]}, "bad-network"),
        ({"op": "feed", "name": "a", "networks": ["10.0.0.0/7"]}, "bad-network"),
        ({"op": "feed", "name": "a", "networks": ["1.2.3.4; drop"]}, "bad-network"),
        ({"op": "feed", "name": "a", "networks": [7]}, "bad-network"),
        ({"op": "feed", "name": "A;x", "networks": []}, "malformed"),
        ({"op": "feed", "name": "a"}, "malformed"),
        ({"op": "feed", "name": "a", "networks": [], "extra": 1}, "malformed"),
        ({"op": "feeds", "names": ["x"] * 33}, "too-many"),
    ]
    for req, counter in bad:
        reply = ask(srv, req)
        assert not reply["ok"] and reply["counter"] == counter, (req, reply)
    assert fw.list_feed("a") == set()


def test_feed_narrowed_around_protected_networks():
    srv, fw = server()
    ask(srv, {"op": "feeds", "names": ["a"]})
    entries = ["198.51.100.0/24", "203.0.113.0/29", "127.0.0.1", "192.0.2.1"]
    reply = ask(srv, {"op": "feed", "name": "a", "networks": entries})
    assert reply["ok"]
    held = fw.list_feed("a")
    # the configured /25 and this host's address are cut out; loopback goes entirely
    assert ip_network("198.51.100.128/25") in held and ip_network("192.0.2.1/32") in held
    for protected in ("198.51.100.0/25", "203.0.113.7/32", "127.0.0.0/8"):
        assert not any(n.overlaps(ip_network(protected)) for n in held)
    assert sum(n.num_addresses for n in held if n.subnet_of(ip_network("203.0.113.0/29"))) == 7
    listed = ask(srv, {"op": "feed_list", "name": "a"})["set"]
    assert {ip_network(x) for x in listed} == held
