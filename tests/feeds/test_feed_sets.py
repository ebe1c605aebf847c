"""Per-feed kernel sets on both backends, in a namespace the test creates: atomic replacement,
feeds dropped from the configuration lose their sets, teardown leaves nothing behind. And the
daemon's Feeds component on the dry-run backend: reconfiguring and allow-list changes."""

from __future__ import annotations

import asyncio
import shutil
from ipaddress import ip_network

import pytest

from sipguard.actions import DryRunFirewall, FirewallConfig, IpsetFirewall, NftablesFirewall
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.feeds import Feeds
from sipguard.feeds.config import FeedConfig
from sipguard.feeds.http import Answer


def nets(*xs: str) -> set:
    return {ip_network(x) for x in xs}


@pytest.mark.netns
@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_feed_sets_replace_drop_teardown(netlab, backend):
    if backend == "iptables" and not shutil.which("ipset"):
        pytest.skip("ipset is not installed")
    pbx = netlab.add_host("pbx")
    cls = NftablesFirewall if backend == "nftables" else IpsetFirewall
    fw = cls(FirewallConfig(netns=pbx.name))
    fw.init()
    fw.set_feeds(["a", "b"])
    assert fw.load_feed("a", ["192.0.2.1", "198.51.100.0/24", "2001:db8::/32"]) == 3
    fw.load_feed("b", ["203.0.113.9"])
    assert fw.list_feed("a") == nets("192.0.2.1", "198.51.100.0/24", "2001:db8::/32")
    fw.load_feed("a", ["192.0.2.2"])  # replaced whole, not merged
    assert fw.list_feed("a") == nets("192.0.2.2") and fw.list_feed("b") == nets("203.0.113.9")
    fw.init()  # a restart re-creates the ban rules; the feeds' sets and rules stay
    assert fw.list_feed("a") == nets("192.0.2.2")
    fw.set_feeds(["a"])  # b left the configuration
    if backend == "nftables":
        listing = netlab.run(pbx, ["nft", "list", "table", "inet", "sipguard"]).stdout
        assert "feed_b_" not in listing and "@feed_a_4" in listing
    else:
        sets = netlab.run(pbx, ["ipset", "list", "-n"]).stdout.split()
        assert "sipguard_b4" not in sets and "sipguard_a4" in sets
        rules = netlab.run(pbx, ["iptables", "-t", "raw", "-S", "SIPGUARD"]).stdout
        assert "sipguard_a4" in rules and "sipguard_b4" not in rules
    fw.teardown()
    if backend == "iptables":
        assert not netlab.run(pbx, ["ipset", "list", "-n"]).stdout.split()
    else:
        assert "sipguard" not in netlab.run(pbx, ["nft", "list", "tables"]).stdout


def test_feeds_component_reconfigure_and_allow_changes():
    bodies = {"http://x/a": b"192.0.2.0/24\n203.0.113.5\n", "http://x/b": b"198.51.100.1\n"}

    def get(url, headers, timeout, max_bytes):
        return Answer(200, bodies[url], {})

    async def scenario() -> None:
        fw = DryRunFirewall()
        enforcer = Enforcer(fw, None, [])
        feeds = Feeds(enforcer, lambda: enforcer.allowed, get=get)
        a = FeedConfig("a", "plain", url="http://x/a")
        b = FeedConfig("b", "plain", url="http://x/b")
        await feeds.configure([a, b], {})
        await feeds.refresh_all()
        assert fw.list_feed("a") == nets("192.0.2.0/24", "203.0.113.5")
        enforcer.allowed = [ip_network("192.0.2.128/25")]
        feeds.allow_changed()
        task = asyncio.create_task(feeds.run())  # the loop reloads what allow_changed marked
        for _ in range(100):
            if fw.list_feed("a") == nets("192.0.2.0/25", "203.0.113.5"):
                break
            await asyncio.sleep(0.01)
        assert fw.list_feed("a") == nets("192.0.2.0/25", "203.0.113.5")
        await feeds.configure([b], {})  # a is gone: its set too; b keeps its state
        assert set(fw.feeds) == {"b"} and feeds.states["b"].last_ok is not None
        task.cancel()
        await enforcer.close()

    asyncio.run(scenario())
