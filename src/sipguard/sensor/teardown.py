"""Remove every kernel object the sensor and `firewall render --apply` may have left behind.

`sipguard firewall remove` calls this after tearing down the ban table, so one command takes
out all that sipguard added: the sensor's queue table and iptables chains, the rendered base
table and the secret-domain string-match chains. Objects that are absent are skipped; anything
else in the ruleset is left alone.
"""

from __future__ import annotations

import json

from sipguard.actions import FirewallError, run_tool
from sipguard.sensor.queue_rules import CHAIN_IN, CHAIN_OUT
from sipguard.sensor.queue_rules import TABLE as SENSOR_TABLE
from sipguard.sensor.render import BASE_TABLE, DOMAIN_CHAIN

OWN_CHAINS = (CHAIN_IN, CHAIN_OUT, DOMAIN_CHAIN, f"{DOMAIN_CHAIN}-check")


def remove_all(netns: str | None = None) -> list[str]:
    """Delete sipguard's sensor and render objects; returns what was removed."""
    removed: list[str] = []
    for table in (SENSOR_TABLE, BASE_TABLE):
        try:
            run_tool(["nft", "delete", "table", "inet", table], netns)
            removed.append(f"nft table inet {table}")
        except FirewallError:
            pass  # not there
    for tool in ("iptables", "ip6tables"):
        try:
            rules = run_tool([tool, "-w", "-S"], netns).splitlines()
        except FirewallError:
            continue  # no iptables on this host
        # jumps into our chains first (from any built-in or foreign chain), then the chains
        for rule in rules:
            words = rule.split()
            target = words[words.index("-j") + 1] if "-j" in words[:-1] else ""
            if words[:1] == ["-A"] and words[1] not in OWN_CHAINS and target in OWN_CHAINS:
                run_tool([tool, "-w", "-D", *words[1:]], netns)
        for chain in OWN_CHAINS:
            if f"-N {chain}" in rules:
                run_tool([tool, "-w", "-F", chain], netns)
                run_tool([tool, "-w", "-X", chain], netns)
                removed.append(f"{tool} chain {chain}")
    for family in ("ip", "ip6"):
        if _drop_if_empty(family, "filter", netns):
            removed.append(f"empty nft table {family} filter (left by iptables-nft)")
    return removed


def _drop_if_empty(family: str, table: str, netns: str | None) -> bool:
    """iptables-nft creates the `filter` table implicitly; once our chains are gone it may hold
    nothing at all. Such a table (no rules, every policy accept) has no effect, so delete it."""
    try:
        listing = json.loads(run_tool(["nft", "-j", "list", "table", family, table], netns))
    except (FirewallError, ValueError):
        return False
    items = listing.get("nftables", [])
    if any("rule" in i or "set" in i or "map" in i for i in items):
        return False
    if any(i["chain"].get("policy", "accept") != "accept" for i in items if "chain" in i):
        return False
    run_tool(["nft", "delete", "table", family, table], netns)
    return True
