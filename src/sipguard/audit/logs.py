"""Addresses that registered successfully, read from Asterisk logs (for ACL suggestions).

Sources, best first: SECURITY `SuccessfulAuth` lines (the socket address Asterisk saw), chan_sip
`Registered SIP 'x' at IP:port`, and PJSIP `Added contact 'uri' to AOR 'x'` (the contact host is
what the phone claimed, so it is only used when nothing better names that account).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

MAX_LINE = 4096

CHAN_SIP = re.compile(r"Registered SIP '([^']{1,80})' at (\[[0-9A-Fa-f:.]+\]|[0-9.]+):\d+")
PJSIP_CONTACT = re.compile(
    r"Added contact '(?:sips?:)?(?:[^@']*@)?(\[[0-9A-Fa-f:.]+\]|[0-9.]+)[^']*'"
    r" to AOR '([^']{1,80})'"
)
SUCCESS = re.compile(
    r'SecurityEvent="SuccessfulAuth".*?AccountID="(?:sips?:)?([^"@]{1,80})[^"]*".*?'
    r'RemoteAddress="IPV[46]/(?:UDP|TCP|TLS|WS|WSS)/([0-9A-Fa-f:.]+)/\d+"'
)


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


def registered_addresses(lines: Iterable[str]) -> dict[str, set[str]]:
    strong: dict[str, set[str]] = {}
    weak: dict[str, set[str]] = {}
    for raw in lines:
        line = raw[:MAX_LINE]
        for regex, target, name_group, addr_group in (
            (SUCCESS, strong, 1, 2),
            (CHAN_SIP, strong, 1, 2),
            (PJSIP_CONTACT, weak, 2, 1),
        ):
            match = regex.search(line)
            if match:
                address = _address(match.group(addr_group))
                if address is not None:
                    target.setdefault(match.group(name_group), set()).add(address)
    for name, addresses in weak.items():
        strong.setdefault(name, addresses)
    return strong
