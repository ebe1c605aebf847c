"""Building the SIP requests a probe sends (RFC 3261), and digest answers (RFC 2617 / 7616).

Pure: bytes out, nothing sent. Responses are parsed with `sipguard.core.sip.parse_message`; the
builders here take what they need from them (To tag, Contact) to write CANCEL, ACK and BYE.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace

from sipguard.core.sip import SipMessage, SipParseError, parse_name_addr

__all__ = [
    "Challenge",
    "Request",
    "ack_for",
    "bye_for",
    "cancel_for",
    "digest_authorization",
    "parse_challenge",
]

#: what the probe calls itself: it must not look like a phone, and admins grepping their logs
#: for it should find it
USER_AGENT = "sipguard-probe"


@dataclass(frozen=True, slots=True)
class Request:
    """One request; `encode()` gives the bytes on the wire. Every field is kept, so the
    CANCEL/ACK/BYE of a transaction can be derived from it."""

    method: str
    uri: str
    via: str  # "SIP/2.0/UDP host:port"
    branch: str
    from_addr: str  # "<sip:user@host>"
    from_tag: str
    to_addr: str
    call_id: str
    cseq: int
    to_tag: str | None = None
    cseq_method: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    content_type: str = ""

    def encode(self) -> bytes:
        to = self.to_addr + (f";tag={self.to_tag}" if self.to_tag else "")
        lines = [
            f"{self.method} {self.uri} SIP/2.0",
            f"Via: {self.via};branch={self.branch};rport",
            "Max-Forwards: 70",
            f"From: {self.from_addr};tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {self.cseq_method or self.method}",
            f"User-Agent: {USER_AGENT}",
        ]
        lines += [f"{name}: {value}" for name, value in self.extra]
        if self.body:
            lines.append(f"Content-Type: {self.content_type or 'application/sdp'}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def cancel_for(invite: Request) -> Request:
    """RFC 3261 9.1: same Request-URI, Via branch, From, To (no tag), Call-ID and CSeq number."""
    return replace(invite, method="CANCEL", cseq_method=None, extra=(), body=b"", to_tag=None)


def _to_tag(response: SipMessage) -> str | None:
    to = response.header("to")
    if to is None:
        return None
    try:
        return parse_name_addr(to).tag
    except SipParseError:
        return None


def _contact_uri(response: SipMessage, fallback: str) -> str:
    contact = response.header("contact")
    if contact is None:
        return fallback
    try:
        addr = parse_name_addr(contact)
    except SipParseError:
        return fallback
    uri = addr.uri
    if uri.host is None:
        return fallback
    port = f":{uri.port}" if uri.port else ""
    user = f"{uri.user}@" if uri.user else ""
    return f"{uri.scheme}:{user}{uri.host}{port}"


def ack_for(invite: Request, response: SipMessage, new_branch: str) -> Request:
    """ACK a final answer: same branch for a failure (17.1.1.3), a new transaction for a 2xx
    (13.2.2.4), sent to the Contact of the answer."""
    ok = response.status is not None and 200 <= response.status < 300
    return replace(
        invite,
        method="ACK",
        uri=_contact_uri(response, invite.uri) if ok else invite.uri,
        branch=new_branch if ok else invite.branch,
        to_tag=_to_tag(response),
        cseq_method=None,
        extra=(),
        body=b"",
    )


def bye_for(invite: Request, response: SipMessage, new_branch: str) -> Request:
    """Hang up a dialog a 2xx opened (15.1.1): the next CSeq, the remote tag, its Contact."""
    return replace(
        invite,
        method="BYE",
        uri=_contact_uri(response, invite.uri),
        branch=new_branch,
        to_tag=_to_tag(response),
        cseq=invite.cseq + 1,
        cseq_method=None,
        extra=(),
        body=b"",
    )


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed WWW-Authenticate / Proxy-Authenticate Digest challenge."""

    header: str  # "www-authenticate" or "proxy-authenticate"
    realm: str
    nonce: str
    qop: str | None
    opaque: str | None
    algorithm: str


# challenge = "Digest" LWS digest-cln *(COMMA digest-cln); auth-param = token "=" (token / q-str)
_AUTH_PARAM = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(response: SipMessage) -> Challenge | None:
    for header in ("www-authenticate", "proxy-authenticate"):
        value = response.header(header)
        if value is None or not value.lower().startswith("digest"):
            continue
        params: dict[str, str] = {}
        for m in _AUTH_PARAM.finditer(value[6:][:4096]):
            params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
        if "nonce" not in params:
            continue
        qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        return Challenge(
            header,
            params.get("realm", ""),
            params["nonce"],
            "auth" if "auth" in qops else None,
            params.get("opaque"),
            params.get("algorithm", "MD5"),
        )
    return None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def digest_authorization(
    challenge: Challenge, user: str, password: str, method: str, uri: str, cnonce: str
) -> tuple[str, str]:
    """(header name, value) answering `challenge` (MD5, qop=auth when offered)."""
    ha1 = _md5(f"{user}:{challenge.realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    parts = [
        f'username="{user}"',
        f'realm="{challenge.realm}"',
        f'nonce="{challenge.nonce}"',
        f'uri="{uri}"',
        "algorithm=MD5",
    ]
    if challenge.qop:
        nc = "00000001"
        response = _md5(f"{ha1}:{challenge.nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = _md5(f"{ha1}:{challenge.nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if challenge.opaque is not None:
        parts.append(f'opaque="{challenge.opaque}"')
    name = "Authorization" if challenge.header == "www-authenticate" else "Proxy-Authorization"
    return name, "Digest " + ", ".join(parts)
