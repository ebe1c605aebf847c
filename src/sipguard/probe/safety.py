"""Whom the probe may probe: the local host, or targets the admin declares as their own."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

__all__ = ["Network", "is_local_address", "parse_networks", "refusal", "split_target"]


def split_target(text: str, default_port: int) -> tuple[str, int]:
    """host, [v6]:port, v4:port or name:port -> (host, port). ValueError names the problem."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: bad [IPv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""  # a name, an IPv4 or a bare IPv6 address
    if not host:
        raise ValueError(f"{text!r}: no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: bad port {port_text!r}")
    return host, int(port_text)


def parse_networks(items: Sequence[object], where: str) -> list[Network]:
    out: list[Network] = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ValueError(f"{where}: {item!r} is not an address or network") from None
    return out


def is_local_address(address: str) -> bool:
    """True when this host owns `address`: binding to it succeeds only then."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def refusal(
    address: str,
    declared: Sequence[Network],
    i_own_this: bool,
    is_local: Callable[[str], bool] = is_local_address,
) -> str | None:
    """None when `address` may be probed, else the one-line reason."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address}: not an IP address"
    if i_own_this or ip.is_loopback or any(ip in net for net in declared) or is_local(address):
        return None
    return (
        f"refusing to probe {address}: not this host and not declared as yours "
        "(add it to probe.targets in sipguard.toml, or pass --i-own-this)"
    )
