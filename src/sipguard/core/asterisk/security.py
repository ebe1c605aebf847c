"""Asterisk security events: the `SecurityEvent="…",K="v"` log form and the AMI `Key: value` form.

The log form is never escaped (shared/asterisk-formats.md §4, §5.1): AccountID, SessionID
(PJSIP's Call-ID) and Challenge/Response are client text and may contain `",RemoteAddress="…`.
The fields come in a fixed order, so the real RemoteAddress is the first one after which no
server-side field (AccountID, SessionID, LocalAddress) follows; a second one marks tampering.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from sipguard.core.asterisk.addr import parse_ip
from sipguard.core.asterisk.prefix import TimeParser, event_tv
from sipguard.core.events import Event, IPAddress, Kind, Origin, Service

MAX_FIELDS = 64
_BOUNDARY = re.compile(r'",(?=[A-Za-z][A-Za-z0-9]{0,31}=")')
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9]{0,31})=\"")
_BEFORE_REMOTE = frozenset({"AccountID", "SessionID", "LocalAddress"})

EVENT_KINDS: dict[str, Kind] = {
    "InvalidAccountID": Kind.UNKNOWN_ACCOUNT,
    "ChallengeResponseFailed": Kind.WRONG_PASSWORD,
    "InvalidPassword": Kind.WRONG_PASSWORD,
    "FailedACL": Kind.ACL_DENIED,
    "RequestBadFormat": Kind.MALFORMED_REQUEST,
    "RequestNotAllowed": Kind.REQUEST_NOT_ALLOWED,
    "RequestNotSupported": Kind.REQUEST_NOT_ALLOWED,
    "AuthMethodNotAllowed": Kind.REQUEST_NOT_ALLOWED,
    "InvalidTransport": Kind.REQUEST_NOT_ALLOWED,
    "SessionLimit": Kind.LIMIT,
    "MemoryLimit": Kind.LIMIT,
    "LoadAverageLimit": Kind.LIMIT,
    "ChallengeSent": Kind.CHALLENGE_SENT,
    "SuccessfulAuth": Kind.AUTH_SUCCESS,
}
_NAMES = {name: name for name in EVENT_KINDS}
_AMI_FAILURES = frozenset({"InvalidAccountID", "ChallengeResponseFailed", "InvalidPassword"})
_SERVICES = {
    "SIP": Service.CHAN_SIP,
    "PJSIP": Service.PJSIP,
    "AMI": Service.AMI,
    "IAX2": Service.IAX2,
    "IAX": Service.IAX2,
}
_TRANSPORTS = frozenset({"UDP", "TCP", "TLS", "WS", "WSS", "SCTP"})


def parse_security_fields(text: str) -> dict[str, str]:
    """`SecurityEvent="X",K="v",…` -> {"SecurityEvent": "X", "K": "v", …} (values as written).

    A field is cut only at `",Key="`; client text that forges such a boundary is caught by the
    RemoteAddress rule below. Repeated keys keep their first value, except RemoteAddress and
    LocalAddress, which follow the fixed-order rule; a second RemoteAddress sets `_tampered`.
    """
    start = text.find('SecurityEvent="')
    if start < 0:
        return {}
    body = text[start:].rstrip()
    if body.endswith('"'):
        body = body[:-1]
    fast = _simple_fields(body)
    if fast is not None:
        return fast
    parts = _BOUNDARY.split(body, maxsplit=MAX_FIELDS)
    pairs: list[tuple[str, str]] = []
    for part in parts:
        m = _KEY.match(part)
        if m is None:
            if pairs:  # not a field start: glue it back on the previous value
                key, value = pairs[-1]
                pairs[-1] = (key, value + '",' + part)
            continue
        pairs.append((m.group(1), part[m.end() :]))
    fields: dict[str, str] = {}
    remotes = [i for i, (k, _) in enumerate(pairs) if k == "RemoteAddress"]
    chosen = _choose_remote(pairs, remotes)
    for key, value in pairs:
        if key in ("RemoteAddress", "LocalAddress"):
            continue
        fields.setdefault(key, value)
    if chosen is not None:
        fields["RemoteAddress"] = pairs[chosen][1]
        local = [i for i in range(chosen) if pairs[i][0] == "LocalAddress"]
        if local:
            fields["LocalAddress"] = pairs[local[-1]][1]
    if len(remotes) > 1:
        fields["_tampered"] = "1"
    return fields


def _simple_fields(body: str) -> dict[str, str] | None:
    """The common case, fast: every `",` starts a new, distinct key. None: use the full parse."""
    if body.count('",RemoteAddress="') != 1:
        return None
    fields: dict[str, str] = {}
    parts = body.split('",')
    if len(parts) > MAX_FIELDS:
        return None
    for part in parts:
        key, sep, value = part.partition('="')
        if not sep or key in fields or not (key.isascii() and key.isalnum()) or len(key) > 32:
            return None
        fields[key] = value
    return fields


def _choose_remote(pairs: list[tuple[str, str]], remotes: list[int]) -> int | None:
    for i in remotes:
        if not any(k in _BEFORE_REMOTE for k, _ in pairs[i + 1 :]):
            return i
    return remotes[-1] if remotes else None


def parse_remote(text: str) -> tuple[IPAddress, int | None, str | None] | None:
    """`IPV4/UDP/1.2.3.4/5060`, `IPV6/UDP/2001:db8::1/5060`, `IPV4/1.2.3.4/5060` (no transport).

    Split on the last '/': in `IPV6/TCP/2001:db8:0:3acb:11fa:2ac0::/17347` the 17347 is the port.
    """
    if len(text) > 128:
        return None
    head, _, port_text = text.rpartition("/")
    version, _, rest = head.partition("/")
    if version.upper() not in ("IPV4", "IPV6") or not port_text.isdigit() or len(port_text) > 5:
        return None
    transport: str | None = None
    maybe, slash, addr = rest.partition("/")
    if slash and maybe.upper() in _TRANSPORTS:
        transport = maybe.lower()
    else:
        addr = rest
    if addr.startswith("[") and addr.endswith("]"):
        addr = addr[1:-1]
    ip = parse_ip(addr)
    port = int(port_text)
    if ip is None or not 0 <= port < 65536:
        return None
    return ip, port or None, transport


def security_event(
    fields: Mapping[str, str],
    time: float | None,
    origin: Origin,
    *,
    event_time: float | None = None,
) -> Event | None:
    """One security event (log or AMI form) as an Event, or None when it is not one we use.

    `time` is used when the event has no usable EventTV; `event_time` is the caller's parse of the
    EventTV (the log normalizer parses it with its own clock). Events without a valid
    RemoteAddress give None: an address-less security event cannot be charged to anyone.
    """
    name = (fields.get("SecurityEvent") or fields.get("Event") or "").strip()
    kind = EVENT_KINDS.get(name)
    if kind is None:
        return None
    name = _NAMES[name]  # the shared copy: dedup keys and evidence hold millions of these
    remote = parse_remote(fields.get("RemoteAddress", "").strip())
    if remote is None:
        return None
    ip, port, transport = remote
    service = _SERVICES.get(fields.get("Service", "").strip().upper(), Service.SECURITY)
    account: str | None = fields.get("AccountID")
    if account is not None:
        account = account.strip() or None
    detail = name
    if kind is Kind.WRONG_PASSWORD and account == "<unknown>":
        kind = Kind.UNKNOWN_ACCOUNT
    if account == "<unknown>":
        account = None
    if (
        name == "ChallengeResponseFailed"
        and service is Service.CHAN_SIP
        and kind is Kind.WRONG_PASSWORD
    ):
        kind = Kind.AUTH_NAME_MISMATCH  # chan_sip raises it only for a username/auth name mismatch
    if name == "FailedACL":
        acl = fields.get("ACLName", "").strip()
        detail = f"{name} {acl}" if acl else name
        if acl == "no_extension_match":
            kind = Kind.CALL_REJECTED
        elif acl == "domain_must_match":
            kind = Kind.REQUEST_NOT_ALLOWED
    if service is Service.AMI:
        if name in _AMI_FAILURES:
            kind = Kind.AMI_LOGIN_FAILED
        elif kind is Kind.AUTH_SUCCESS:
            kind = Kind.AMI_LOGIN_SUCCESS
    when = event_time if event_time is not None else time
    if when is None:
        when = _eventtv_utc(fields.get("EventTV", ""))
    return Event(
        time=when if when is not None else 0.0,
        kind=kind,
        service=service,
        ip=ip,
        port=port,
        transport=transport,
        account=account,
        call_id=(fields.get("SessionID") or None),
        detail=detail,
        origin=origin,
    )


def _eventtv_utc(text: str) -> float | None:
    return event_tv(text.strip(), _UTC) if text else None


_UTC = TimeParser(1970, None)
