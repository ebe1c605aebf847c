"""What a message grammar yields: a Candidate event plus what dedup and linking need to know."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipguard.core.events import Event, IPAddress, Kind, Origin, Service

LOG = "log"
SECURITY = "security"


@dataclass(slots=True)
class Candidate:
    event: Event
    channel: str = LOG  # LOG (a module's own line) or SECURITY (a security event)
    tag: str | None = None  # [C-…] call tag
    tampered: bool = False  # the line carries a second, injected address
    link: frozenset[str] = frozenset()  # address-less: names of lines that may carry its address
    link_name: str | None = None  # address-bearing: the name address-less lines look for
    followed: bool = False  # address-less: the module logs the same attempt again with an address


QUOTED = re.compile(r'"((?:[^"\\]|\\.){0,512})"\s*')
_URI_USER = re.compile(r"(?:sips?|tel):([^@;>?\s]{1,128})[@;>]?")


def name_addr(text: str) -> tuple[str | None, str | None]:
    """(display name, URI user) of a From/To value such as `"1001" <sip:1001@host>;tag=x`."""
    display: str | None = None
    uri = text
    m = QUOTED.match(text)
    if m is not None:
        display = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
        uri = text[m.end() :]
    else:
        lt = text.find("<")
        if lt > 0 and ":" not in text[:lt]:
            display = text[:lt].strip() or None
            uri = text[lt:]
    u = _URI_USER.search(uri)
    return display or None, (u.group(1) if u is not None else None)


def make_event(
    kind: Kind,
    service: Service,
    time: float,
    origin: Origin,
    addr: tuple[IPAddress, int | None] | None = None,
    **extra: str | None,
) -> Event:
    return Event(
        time=time,
        kind=kind,
        service=service,
        ip=addr[0] if addr else None,
        port=addr[1] if addr else None,
        origin=origin,
        **extra,  # type: ignore[arg-type]
    )
