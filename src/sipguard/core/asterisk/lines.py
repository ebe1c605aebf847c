"""Message grammars: one Asterisk message (prefix removed) -> at most one Candidate event.

Addresses are read only from the position each format's grammar gives them (asterisk-formats.md
§2, §5): PJSIP `Request … failed for` lines are read from the left (From is a name-addr, then the
first `' failed for '`), chan_sip `Registration … failed for` lines are anchored at the end.
Address-less lines come back with ip=None and the names of the lines that can carry their address.
"""

from __future__ import annotations

import re

from sipguard.core.asterisk.addr import parse_hostport, split_transport
from sipguard.core.asterisk.candidate import QUOTED, SECURITY, Candidate, make_event, name_addr
from sipguard.core.asterisk.iax_ami import parse_ami, parse_iax2
from sipguard.core.asterisk.prefix import Prefix, TimeParser, event_tv
from sipguard.core.asterisk.security import parse_security_fields, security_event
from sipguard.core.events import Kind, Origin, Service

_FAILED_FOR = "' failed for '"
_TOKENS = re.compile(r"[^<:\"]{1,256}?\s*(?=<)")
_FALLBACK = re.compile(r"' failed for '([^']{1,100})' \(callid: ")
# PJSIP and chan_sip failure reasons -> kinds. Public: the C normalizer's tables are generated
# from them (hatch_build.render_tables -> fastlog/tables.h).
PJSIP_KINDS = {
    "No matching endpoint found": Kind.UNKNOWN_ACCOUNT,
    "Failed to authenticate": Kind.WRONG_PASSWORD,
    "Error to authenticate": Kind.WRONG_PASSWORD,
    "Not match Endpoint ACL": Kind.ACL_DENIED,
    "Not match Endpoint Contact ACL": Kind.ACL_DENIED,
}
_PJSIP_REASON = re.compile(
    rf"\) - ({'|'.join(map(re.escape, PJSIP_KINDS))})( after \d+ tries in [\d.]+ ms)?$"
)
_REGISTRATION = re.compile(r"Registration from '(.*)' failed for '([^']{1,90})' - ([^']{1,80})$")
CHAN_SIP_KINDS = {
    "Wrong password": Kind.WRONG_PASSWORD,
    "No matching peer found": Kind.UNKNOWN_ACCOUNT,
    "Username/auth name mismatch": Kind.AUTH_NAME_MISMATCH,
    "Device does not match ACL": Kind.ACL_DENIED,
    "ACL error (permit/deny)": Kind.ACL_DENIED,
}
_CALL_REJECTED = re.compile(
    r"(?:(?P<ep>[^\s:']{1,80}): Call|Call from '(?P<user>.{0,512}?)') \((?P<addr>[^()\s]{1,100})\)"
    r" to extension '(?P<ext>.*)' rejected because extension not found in context '(?P<ctx>.*)'\.?$"
)
_DEVICE = re.compile(
    r"Failed to authenticate (?:device|user) (.*?)(?: for ([A-Z]{1,20}), code = -?\d{1,6})?$"
)
_FAKE_AUTH = re.compile(r"Sending fake auth rejection for (?:device|user) (.*)$")
_MISMATCH = re.compile(r"username mismatch, have <([^>]*)>, digest has <(.*)>$")
_MALFORMED = (
    "No closing bracket found in ",
    "From address missing 'sip:'",
    "No field 'From' present",
)
_TIMEOUT = re.compile(r"Timeout on (.{1,512}) on non-critical invite transaction\.?$")
_AOR = re.compile(r"Endpoint '([^']{0,128})' \(([^()\s]{1,100})\) has no configured AORs")
_PJPROJECT = re.compile(
    r"Dropping (\d{1,9}) bytes packet from (UDP|TCP|TLS|WS|WSS) (\S{1,100}) : (.*)$"
)
_REGISTERED = re.compile(r"Registered SIP '([^']{0,128})' at (\S{1,100})$")
_ADDED_CONTACT = re.compile(r"Added contact '(.*)' to AOR '([^']*)' with expiration of \d+ seconds")

# Lines that can give an address-less line its address (security event names, "Registration").
_LINK_AUTH = frozenset({"InvalidPassword", "ChallengeResponseFailed", "InvalidAccountID"})
_LINK_MALFORMED = frozenset({"ChallengeSent", "RequestBadFormat"})


def _pjsip_request(msg: str, time: float, origin: Origin) -> Candidate | None:
    """`Request ['<M>' ]from '<name-addr>' failed for '<addr>' (callid: <id>) - <reason>`."""
    i = len("Request ")
    method: str | None = None
    if msg.startswith("'", i):
        end = msg.find("' ", i + 1)
        if end < 0 or end - i > 33:
            return None
        method = msg[i + 1 : end]
        i = end + 2
    if not msg.startswith("from '", i):
        return None
    i += 6
    addr_at = _grammar_failed_for(msg, i)
    if addr_at < 0:  # From did not parse: the first address followed by "' (callid: "
        m = _FALLBACK.search(msg, i)
        if m is None:
            return None
        addr_at = m.start(1)
    end = msg.find("'", addr_at)
    addr = parse_hostport(msg[addr_at:end]) if end > 0 else None
    reason = _PJSIP_REASON.search(msg, end if end > 0 else 0)
    if addr is None or reason is None:
        return None
    from_text = msg[i : addr_at - len(_FAILED_FOR)]
    display, user = name_addr(from_text)
    callid: str | None = None
    if msg.startswith(" (callid: ", end + 1):
        callid = msg[end + 11 : reason.start()] or None
    ev = make_event(
        PJSIP_KINDS[reason.group(1)],
        Service.PJSIP,
        time,
        origin,
        addr,
        account=user,
        user_agent=display,
        call_id=callid,
        detail=f"{method or 'request'}: {reason.group(1)}{reason.group(2) or ''}",
    )
    return Candidate(ev, tampered=msg.count(_FAILED_FOR) > 1)


def _grammar_failed_for(msg: str, i: int) -> int:
    """Index of the address after the From name-addr starting at i, or -1 if From is not one."""
    m = QUOTED.match(msg, i)
    if m is not None:
        i = m.end()
    elif not msg.startswith("<", i):
        t = _TOKENS.match(msg, i)
        if t is not None:
            i = t.end()
        else:  # a bare URI: no space up to the separator
            j = msg.find(_FAILED_FOR, i)
            if j < 0 or " " in msg[i:j]:
                return -1
            return j + len(_FAILED_FOR)
    if msg.startswith("<", i):
        # a URI cannot hold '>' (pjproject rejects it), so the first ">' failed for '" ends it
        gt = msg.find(">" + _FAILED_FOR, i)
        return gt + 1 + len(_FAILED_FOR) if gt >= 0 else -1
    return i + len(_FAILED_FOR) if msg.startswith(_FAILED_FOR, i) else -1


def parse_message(
    p: Prefix, time: float, origin: Origin, clock: TimeParser
) -> tuple[Candidate | None, bool]:
    """(candidate or None, malformed). Malformed: a known phrase whose grammar did not match."""
    msg = p.message
    f = p.file
    if msg.startswith("SecurityEvent="):
        fields = parse_security_fields(msg)
        tv = fields.get("EventTV")
        ev = security_event(fields, time, origin, event_time=event_tv(tv, clock) if tv else None)
        if ev is None:
            return None, fields.get("SecurityEvent") in (None, "")
        return Candidate(
            ev, SECURITY, tampered="_tampered" in fields, link_name=ev.detail.split()[0]
        ), False
    if msg.startswith("Request "):
        c = _pjsip_request(msg, time, origin)
        return c, c is None and _FAILED_FOR in msg
    if msg.startswith("Registration from '"):
        m = _REGISTRATION.search(msg)
        addr = parse_hostport(m.group(2)) if m else None
        if m is None or addr is None:
            return None, True
        display, user = name_addr(m.group(1))
        reason = m.group(3)
        kind = CHAN_SIP_KINDS.get(reason, Kind.REQUEST_NOT_ALLOWED)
        ev = make_event(
            kind,
            Service.CHAN_SIP,
            time,
            origin,
            addr,
            account=user,
            user_agent=display,
            detail=reason,
        )
        return Candidate(
            ev, tag=p.tag, tampered=msg.count(_FAILED_FOR) > 1, link_name="Registration"
        ), False
    if "rejected because extension not found" in msg:
        m = _CALL_REJECTED.search(msg)
        if m is None:
            return None, True
        transport, addr_text = split_transport(m.group("addr"))
        addr = parse_hostport(addr_text)
        if addr is None:
            return None, True
        pjsip = transport is not None or "pjsip" in f
        ev = make_event(
            Kind.CALL_REJECTED,
            Service.PJSIP if pjsip else Service.CHAN_SIP,
            time,
            origin,
            addr,
            account=m.group("user") or m.group("ep"),
            target=m.group("ext"),
            detail=f"extension not found in context '{m.group('ctx')}'",
        )
        tampered = msg.count(") to extension '") > 1
        return Candidate(ev, tag=p.tag, tampered=tampered, link_name="Call"), False
    return _other(p, msg, f, time, origin)


def _other(
    p: Prefix, msg: str, f: str, time: float, origin: Origin
) -> tuple[Candidate | None, bool]:
    if msg.startswith("Failed to authenticate "):
        m = _DEVICE.match(msg)
        if m is None:
            return None, True
        display, user = name_addr(m.group(1))
        ev = make_event(
            Kind.WRONG_PASSWORD,
            Service.CHAN_SIP,
            time,
            origin,
            account=user,
            user_agent=display,
            detail=f"Failed to authenticate device for {m.group(2) or '?'}",
        )
        return Candidate(
            ev, tag=p.tag, tampered="failed for '" in m.group(1), link=_LINK_AUTH
        ), False
    if msg.startswith("Sending fake auth rejection"):
        m = _FAKE_AUTH.match(msg)
        if m is None:
            return None, True
        display, user = name_addr(m.group(1))
        ev = make_event(
            Kind.WRONG_PASSWORD,
            Service.CHAN_SIP,
            time,
            origin,
            account=user,
            user_agent=display,
            detail="fake auth rejection",
        )
        return Candidate(ev, tag=p.tag, link=_LINK_AUTH | {"ChallengeSent"}), False
    if msg.startswith("username mismatch"):
        m = _MISMATCH.match(msg)
        if m is None:
            return None, True
        ev = make_event(
            Kind.AUTH_NAME_MISMATCH,
            Service.CHAN_SIP,
            time,
            origin,
            account=m.group(1),
            detail=f"username mismatch, digest has <{m.group(2)}>",
        )
        links = frozenset({"Registration", "ChallengeResponseFailed"})
        return Candidate(ev, tag=p.tag, link=links, followed=True), False
    if msg.startswith(_MALFORMED):
        ev = make_event(Kind.MALFORMED_REQUEST, Service.CHAN_SIP, time, origin, detail=msg[:120])
        return Candidate(ev, tag=p.tag, link=_LINK_MALFORMED), False
    if msg.startswith("Timeout on "):
        m = _TIMEOUT.match(msg)
        if m is None:
            return None, "non-critical invite" in msg
        ev = make_event(
            Kind.CHALLENGE_UNANSWERED,
            Service.CHAN_SIP,
            time,
            origin,
            call_id=m.group(1),
            detail="non-critical invite transaction timed out",
        )
        return Candidate(ev, tag=p.tag), False
    if msg.startswith("Endpoint '"):
        m = _AOR.match(msg)
        addr = parse_hostport(m.group(2)) if m else None
        if m is None or addr is None:
            return None, "no configured AORs" in msg
        ev = make_event(
            Kind.REQUEST_NOT_ALLOWED,
            Service.PJSIP,
            time,
            origin,
            addr,
            account=m.group(1),
            detail="endpoint has no configured AORs",
        )
        return Candidate(ev), False
    if msg.startswith(("Host ", "No registration for peer")):
        return parse_iax2(msg, time, origin)
    if "Dropping " in msg:
        m = _PJPROJECT.search(msg)
        addr = parse_hostport(m.group(3)) if m else None
        if m is None or addr is None:
            return None, "bytes packet from" in msg
        ev = make_event(
            Kind.MALFORMED_REQUEST,
            Service.PJPROJECT,
            time,
            origin,
            addr,
            transport=m.group(2).lower(),
            detail=m.group(4)[:200],
        )
        return Candidate(ev), False
    if msg.startswith("Registered SIP '"):
        m = _REGISTERED.match(msg)
        addr = parse_hostport(m.group(2)) if m else None
        if m is None or addr is None:
            return None, True
        ev = make_event(
            Kind.AUTH_SUCCESS,
            Service.CHAN_SIP,
            time,
            origin,
            addr,
            account=m.group(1),
            detail="Registered",
        )
        return Candidate(ev, tag=p.tag), False
    if msg.startswith("Added contact '"):
        m = _ADDED_CONTACT.match(msg)
        if m is None:
            return None, False
        ev = make_event(
            Kind.AUTH_SUCCESS,
            Service.PJSIP,
            time,
            origin,
            account=m.group(2),
            detail="Added contact",
        )
        return Candidate(ev, link=frozenset({"SuccessfulAuth"})), False
    if "manager" in f or "authenticate" in msg or "logged on from" in msg:
        return parse_ami(msg, time, origin)
    return None, False
