"""Strict socket-address parsing for the address positions of Asterisk log lines.

Only text that is exactly an address is accepted (`1.2.3.4`, `1.2.3.4:5060`, `[2001:db8::1]:5060`,
and where a format prints IPv6 unbracketed with a port, `2001:db8::1:5060` split on the last ':').
Parsed addresses are cached: a busy log repeats the same few attackers millions of times.
"""

from __future__ import annotations

import re
from ipaddress import ip_address

from sipguard.core.events import IPAddress

_CACHE_MAX = 16384  # enough for the repeat offenders; more is memory, not speed
_ip_cache: dict[str, IPAddress | None] = {}

_V4_PORT = re.compile(r"(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?")
_V6_BRACKET = re.compile(r"\[([0-9A-Fa-f:.]{2,45}(?:%[\w.-]{1,32})?)\](?::(\d{1,5}))?")
_V6_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}(?:%[\w.-]{1,32})?")


def parse_ip(text: str) -> IPAddress | None:
    """An IPv4 or IPv6 address written exactly (no port, no brackets), else None."""
    try:
        return _ip_cache[text]
    except KeyError:
        pass
    ip: IPAddress | None
    if len(text) > 80 or not text:
        return None
    try:
        ip = ip_address(text)
    except ValueError:
        ip = None
    if len(_ip_cache) >= _CACHE_MAX:
        _ip_cache.clear()
    _ip_cache[text] = ip
    return ip


def _port(text: str | None) -> int | bool | None:
    """The port number, None when absent, False when out of range."""
    if text is None:
        return None
    value = int(text)
    return value if 0 < value < 65536 else False


def parse_hostport(text: str, *, v6_port_last: bool = True) -> tuple[IPAddress, int | None] | None:
    """`IPv4[:port]`, `[IPv6][:port]`, or (with v6_port_last) unbracketed `IPv6:port`.

    Unbracketed IPv6 is what PJSIP's registrar (and `failed for` before 13.24) prints: the port
    is after the last ':'. A bare IPv6 without a port is accepted only when v6_port_last is off.
    """
    if not text or len(text) > 90:
        return None
    m = _V4_PORT.fullmatch(text)
    if m is None:
        m = _V6_BRACKET.fullmatch(text)
    if m is not None:
        ip = parse_ip(m.group(1))
        port = _port(m.group(2))
        if ip is None or port is False:
            return None
        return ip, port if isinstance(port, int) else None
    if _V6_CHARS.fullmatch(text) is None or text.count(":") < 2:
        return None
    if v6_port_last:
        host, _, port_text = text.rpartition(":")
        if port_text.isdigit() and len(port_text) <= 5:
            port = _port(port_text)
            ip = parse_ip(host)
            if ip is not None and ip.version == 6 and isinstance(port, int):
                return ip, port
        return None
    ip = parse_ip(text)
    return (ip, None) if ip is not None and ip.version == 6 else None


def split_transport(text: str) -> tuple[str | None, str]:
    """`UDP:1.2.3.4:5060` -> ("udp", "1.2.3.4:5060"); text without a transport is returned as is."""
    head, sep, rest = text.partition(":")
    if sep and head.upper() in {"UDP", "TCP", "TLS", "WS", "WSS"}:
        return head.lower(), rest
    return None, text
