"""IAX2 (chan_iax2.c) and AMI (manager.c) lines: bare IP addresses (IAX2 20.x: IP:port)."""

from __future__ import annotations

import re

from sipguard.core.asterisk.addr import parse_hostport, parse_ip
from sipguard.core.asterisk.candidate import Candidate, make_event
from sipguard.core.events import Kind, Origin, Service

_IAX_MD5 = re.compile(r"Host (\S{1,100}) failed MD5 authentication for '(.*)' \(")
_IAX_NOREG = re.compile(r"No registration for peer '(.*)' \(from ([^()\s]{1,100})\)$")
_IAX_AUTH = re.compile(r"Host (\S{1,100}) failed to authenticate as (.*)$")
_AMI_FAIL = re.compile(r"(\S{1,100}) failed to authenticate as '(.*)'$")
_AMI_NOUSER = re.compile(r"(\S{1,100}) tried to authenticate with nonexistent user '(.*)'$")
_AMI_OK = re.compile(r"Manager '(.*)' logged on from (\S{1,100})$")


def parse_iax2(msg: str, time: float, origin: Origin) -> tuple[Candidate | None, bool]:
    for rx, kind, ip_group, acct_group in (
        (_IAX_MD5, Kind.WRONG_PASSWORD, 1, 2),
        (_IAX_NOREG, Kind.UNKNOWN_ACCOUNT, 2, 1),
        (_IAX_AUTH, Kind.WRONG_PASSWORD, 1, 2),
    ):
        m = rx.match(msg)
        if m is None:
            continue
        text = m.group(ip_group)
        ip = parse_ip(text)
        addr = (ip, None) if ip is not None else parse_hostport(text)
        if addr is None:
            return None, True
        account = m.group(acct_group).strip().strip("'") or None
        ev = make_event(kind, Service.IAX2, time, origin, addr, account=account, detail=msg[:80])
        return Candidate(ev), False
    return None, False


def parse_ami(msg: str, time: float, origin: Origin) -> tuple[Candidate | None, bool]:
    for rx, kind, detail in (
        (_AMI_FAIL, Kind.AMI_LOGIN_FAILED, "failed to authenticate"),
        (_AMI_NOUSER, Kind.AMI_LOGIN_FAILED, "nonexistent user"),
    ):
        m = rx.match(msg)
        if m is not None:
            ip = parse_ip(m.group(1))
            if ip is None:
                return None, True
            ev = make_event(
                kind, Service.AMI, time, origin, (ip, None), account=m.group(2), detail=detail
            )
            return Candidate(ev), False
    m = _AMI_OK.match(msg)
    if m is not None:
        ip = parse_ip(m.group(2))
        if ip is None:
            return None, True
        ev = make_event(
            Kind.AMI_LOGIN_SUCCESS,
            Service.AMI,
            time,
            origin,
            (ip, None),
            account=m.group(1),
            detail="logged on",
        )
        return Candidate(ev), False
    return None, False
