"""The grouping-key text of a source address: "203.0.113.5" for a host, "2001:db8::/64" for a
wider network, computed once per address object.

The engine (per rule) and the scan report (per attacker) both group sources by this text. With
tens of thousands of distinct sources, formatting addresses and hashing ipaddress objects (in
Python code: hash(hex(int))) was a large share of a scan, done twice per address; the caches
here are looked up by the object's identity and shared, so each address object is formatted
once at a given prefix pair. The normalizers hand out one object per address text, so repeats
hit. An entry holds its address, so no other object can take that id while the entry lives.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from sipguard.core.alerts import Network
from sipguard.core.events import IPAddress

#: id(address) -> (address, key), for one (IPv4 prefix, IPv6 prefix) pair
KeyCache = dict[int, tuple[IPAddress, str]]

CACHE_MAX = 1 << 16  # entries per cache (~200 bytes each with the address); then cleared
#: The cache for /32 and /64: the shipped rules' and the scan report's grouping.
HOST_KEYS: KeyCache = {}


def _v4_text(n: int) -> str:
    """str(IPv4Address(n)) in half the time (ipaddress joins the bytes in Python code)."""
    return f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def key_text(ip: IPAddress, prefix: int) -> str:
    """The key of an address at a prefix length (not cached): str(ip) for a host, else
    str(IPv4Network((int(ip), prefix), strict=False)) (IPv6 likewise), built without the
    network object (a network prints as its first address, "/", its prefix length)."""
    kind = type(ip)
    if kind is IPv4Address:
        if prefix >= 32:
            return _v4_text(int(ip))
        if prefix >= 0:
            shift = 32 - prefix
            return f"{_v4_text(int(ip) >> shift << shift)}/{prefix}"
    elif kind is IPv6Address and 0 <= prefix < 128:
        shift = 128 - prefix
        return f"{IPv6Address(int(ip) >> shift << shift)}/{prefix}"
    # anything else (a subclass, an IPv6 host with its scope, a bad prefix): as ipaddress does
    if prefix >= ip.max_prefixlen:
        return str(ip)
    if ip.version == 4:
        return str(IPv4Network((int(ip), prefix), strict=False))
    return str(IPv6Network((int(ip), prefix), strict=False))


# 8192: a busy log repeats its attackers, so a small cache hits; with tens of thousands of
# distinct sources a bigger one only holds memory (each entry ~250 bytes) without hitting more
@lru_cache(maxsize=1 << 13)
def source_key(ip: IPAddress, prefix: int) -> str:
    """The grouping key text for an address at a prefix length (cached by value)."""
    return key_text(ip, prefix)


def cached_key(cache: KeyCache, ip: IPAddress, v4_prefix: int, v6_prefix: int) -> str:
    """The key of `ip` at the prefix of its version, through `cache` (one cache per pair)."""
    hit = cache.get(id(ip))
    if hit is not None and hit[0] is ip:
        return hit[1]
    key = key_text(ip, v4_prefix if isinstance(ip, IPv4Address) else v6_prefix)
    if len(cache) >= CACHE_MAX:
        cache.clear()
    cache[id(ip)] = (ip, key)
    return key


def host_key(ip: IPAddress) -> str:
    """The key at /32 (IPv4) or /64 (IPv6)."""
    hit = HOST_KEYS.get(id(ip))
    if hit is not None and hit[0] is ip:
        return hit[1]
    return cached_key(HOST_KEYS, ip, 32, 64)


#: id(network) -> (network, its key, str(network)) for the networks of the engine's alerts: the
#: engine has both texts at hand (the key it grouped by), so the policy (history, running bans)
#: and the report need not print the network again, ~1 us each time
NETWORK_TEXTS: dict[int, tuple[Network, str, str]] = {}
NETWORKS_MAX = 1 << 14


def remember_network(net: Network, key: str, text: str) -> None:
    """Note `net`'s key (`network_key(net)`) and `str(net)`; the caller vouches for both."""
    if len(NETWORK_TEXTS) >= NETWORKS_MAX:
        NETWORK_TEXTS.clear()
    NETWORK_TEXTS[id(net)] = (net, key, text)


def network_key(net: Network) -> str:
    """A single host prints as the bare address, a wider network with its prefix length."""
    hit = NETWORK_TEXTS.get(id(net))
    if hit is not None and hit[0] is net:
        return hit[1]
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return str(net)


def network_text(net: Network) -> str:
    """str(net), remembered for the engine's networks."""
    hit = NETWORK_TEXTS.get(id(net))
    if hit is not None and hit[0] is net:
        return hit[2]
    return str(net)


def clear_caches() -> None:
    """Forget every remembered key and network. A scan that ends calls it: left for the
    interpreter's exit, tens of thousands of cached addresses made its final collections
    cost ~0.3 s."""
    HOST_KEYS.clear()
    NETWORK_TEXTS.clear()
    source_key.cache_clear()


__all__ = [
    "CACHE_MAX",
    "HOST_KEYS",
    "NETWORK_TEXTS",
    "KeyCache",
    "cached_key",
    "clear_caches",
    "host_key",
    "key_text",
    "network_key",
    "network_text",
    "remember_network",
    "source_key",
]
