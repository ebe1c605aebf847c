"""A sans-I/O SIP message parser (RFC 3261): bytes in, `SipMessage` or `SipParseError` out.

The sensor runs this on every packet a scanner sends, so it is hostile-input code: every size is
bounded (`Limits`), and anything that is not SIP raises `SipParseError` with a short reason code
(never another exception) that the sensor turns into a counted MALFORMED_REQUEST event.
Header values are parsed lazily: the hot path only looks at a handful of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "COMPACT_FORMS",
    "REQUEST_LINE",
    "STATUS_LINE",
    "TOKEN",
    "Limits",
    "NameAddr",
    "SipMessage",
    "SipParseError",
    "SipUri",
    "StreamFramer",
    "header_tag",
    "parse_message",
    "parse_name_addr",
    "parse_uri",
    "split_header_list",
]


class SipParseError(Exception):
    """Input that is not a well-formed SIP message. `reason` is a short stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail[:120]
        super().__init__(f"{reason}: {self.detail}" if detail else reason)


@dataclass(frozen=True, slots=True)
class Limits:
    max_message: int = 65535  # the largest UDP datagram
    max_headers: int = 128
    max_line: int = 8192


DEFAULT_LIMITS = Limits()

#: RFC 3261 7.3.3 (and later RFCs: o=Event RFC 6665, u=Allow-Events, r=Refer-To RFC 3515, ...)
COMPACT_FORMS: dict[str, str] = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "y": "identity",
    "n": "identity-info",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
}

# The start-line grammar, public so that other parsers of the same bytes (the sensor's verdict
# fast path) accept exactly what parse_message accepts. Use them with fullmatch on a start-line
# without its CRLF.
#: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" ), as a
#: regex source string (compile it as str or encode it for bytes)
TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
#: Request-Line = Method SP Request-URI SP SIP-Version ; SIP-Version = "SIP/" 1*DIGIT "." 1*DIGIT
#: groups: (method, request-uri, version)
REQUEST_LINE = re.compile(rf"({TOKEN}) (\S+) (SIP/[0-9]+\.[0-9]+)")
#: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase ; Status-Code = 3DIGIT
#: groups: (version, status code, reason phrase)
STATUS_LINE = re.compile(r"(SIP/[0-9]+\.[0-9]+) ([1-6][0-9][0-9]) ?([^\r\n]*)")
# message-header = field-name HCOLON field-value ; HCOLON = *( SP / HTAB ) ":" SWS
_HEADER_NAME = re.compile(TOKEN)
# hostname    = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
# (the hostname pattern covers IPv4address too; the sensor compares hosts as text)
_HOSTNAME = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.?"
)
# IPv6reference = "[" IPv6address "]"  (hex digits, colons, and an embedded IPv4 tail)
_IPV6_REF = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
# port = 1*DIGIT
_PORT = re.compile(r"[0-9]{1,5}")
# user = 1*( unreserved / escaped / user-unreserved ) ; password = *( unreserved / escaped / ...)
# (anything printable but ":" "@" and whitespace; the sensor never trusts these as identities)
_USERINFO = re.compile(r"[^\s:@<>\"]*(?::[^\s@<>\"]*)?")
# display-name = *(token LWS) / quoted-string
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE ; quoted-pair = "\" (%x00-09 / ...)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class SipUri:
    """SIP-URI / SIPS-URI / tel URI (RFC 3261 19.1, RFC 3966). `host` is lower-case, IPv6 kept
    in brackets; None for tel: and other absolute URIs."""

    scheme: str
    user: str | None
    password: str | None
    host: str | None
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value if value is not None else ""
        return None


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From, To, Contact, Route ...: `[display-name] <addr-spec> *(;param)` or a bare addr-spec."""

    display: str | None
    uri: SipUri
    params: tuple[tuple[str, str | None], ...] = ()

    @property
    def tag(self) -> str | None:
        for key, value in self.params:
            if key == "tag":
                return value
        return None


def _split_params(text: str, sep: str, what: str) -> tuple[tuple[str, str | None], ...]:
    # uri-parameters = *( ";" uri-parameter) ; generic-param = token [ EQUAL gen-value ]
    out: list[tuple[str, str | None]] = []
    for part in text.split(sep):
        if not part:
            continue
        key, eq, value = part.partition("=")
        key = key.strip().lower()
        if not key or len(out) >= 64:
            raise SipParseError(f"bad_{what}_param", part)
        out.append((key, value.strip() if eq else None))
    return tuple(out)


# Request-URIs and From/To values repeat (a phone re-registers with the same ones), so both
# parsers are memoized for short inputs; the results are immutable and the caches bounded
# (4096 entries of at most _CACHED_TEXT characters each).
_CACHED_TEXT = 256


def parse_uri(text: str) -> SipUri:
    return _parse_uri_cached(text) if len(text) <= _CACHED_TEXT else _parse_uri(text)


def parse_name_addr(text: str) -> NameAddr:
    return _parse_name_addr_cached(text) if len(text) <= _CACHED_TEXT else _parse_name_addr(text)


def _parse_uri(text: str) -> SipUri:
    """Parse a Request-URI or addr-spec.

    SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
    SIPS-URI = "sips:" [ userinfo ] hostport uri-parameters [ headers ]
    userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
    hostport = host [ ":" port ] ; host = hostname / IPv4address / IPv6reference
    headers  = "?" header *( "&" header ) ; header = hname "=" hvalue
    """
    text = text.strip()
    if len(text) > 2048:
        raise SipParseError("uri_too_long")
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or not scheme or not scheme.isascii() or not scheme.isalpha():
        raise SipParseError("bad_uri", text)
    if scheme not in ("sip", "sips"):
        # absoluteURI / telephone-subscriber: keep the subscriber number as the user
        if not rest or any(c.isspace() for c in rest):
            raise SipParseError("bad_uri", text)
        number, _, params = rest.partition(";")
        user = number if scheme == "tel" else None
        return SipUri(scheme, user, None, None, None, _split_params(params, ";", "uri"))
    rest, _, hdrs = rest.partition("?")
    user = password = None
    at = rest.rfind("@")  # userinfo never holds an unescaped "@", so the last one ends it
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        if not _USERINFO.fullmatch(userinfo):
            raise SipParseError("bad_uri_user", userinfo)
        user, has_pw, pw = userinfo.partition(":")
        password = pw if has_pw else None
    hostport, _, params = rest.partition(";")
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        host, portpart = hostport[:end], hostport[end:]
        if not end or not _IPV6_REF.fullmatch(host):
            raise SipParseError("bad_uri_host", hostport)
    else:
        host, _, port_text = hostport.partition(":")
        portpart = ":" + port_text if _ else ""
        if not _HOSTNAME.fullmatch(host):
            raise SipParseError("bad_uri_host", hostport)
    port = None
    if portpart:
        if not portpart.startswith(":") or not _PORT.fullmatch(portpart[1:]):
            raise SipParseError("bad_uri_port", hostport)
        port = int(portpart[1:])
        if port > 65535:
            raise SipParseError("bad_uri_port", hostport)
    headers: tuple[tuple[str, str], ...] = ()
    if hdrs:
        pairs = []
        for part in hdrs.split("&")[:64]:
            name, eq, value = part.partition("=")
            if not eq or not name:
                raise SipParseError("bad_uri_header", part)
            pairs.append((name, value))
        headers = tuple(pairs)
    return SipUri(
        scheme, user, password, host.lower(), port, _split_params(params, ";", "uri"), headers
    )


def _parse_name_addr(text: str) -> NameAddr:
    """from-spec / to-spec / contact-param:

    name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
    addr-spec    = SIP-URI / SIPS-URI / absoluteURI
    from-spec    = ( name-addr / addr-spec ) *( SEMI from-param )
    In the bare addr-spec form, every ";param" belongs to the header, not the URI (RFC 3261 20.10).
    """
    text = text.strip()
    display: str | None = None
    if text.startswith('"'):
        m = _QUOTED.match(text)
        if m is None:
            raise SipParseError("bad_display_name", text)
        display = re.sub(r"\\(.)", r"\1", m.group(1))
        text = text[m.end() :].lstrip()
        if not text.startswith("<"):
            raise SipParseError("bad_name_addr", text)
    lt = text.find("<")
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError("bad_name_addr", text)
        if display is None:
            display = text[:lt].strip() or None
        uri_text, rest = text[lt + 1 : gt], text[gt + 1 :].strip()
    else:
        uri_text, _, rest = text.partition(";")
        rest = ";" + rest if rest else ""
    if rest and not rest.startswith(";"):
        raise SipParseError("bad_name_addr", rest)
    return NameAddr(display, parse_uri(uri_text), _split_params(rest, ";", "header"))


# tag-param = "tag" EQUAL token   (a From/To header parameter, after the addr-spec)
_TAG = re.compile(r";[ \t]*tag[ \t]*=[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)", re.IGNORECASE)


def header_tag(value: str | None) -> str | None:
    """The tag parameter of a From/To value, found without parsing the URI (the hot path).

    The tag must follow the closing ">" of a name-addr, so a ";tag=" inside the URI is ignored.
    """
    if value is None:
        return None
    m = _TAG.search(value, value.rfind(">") + 1)
    return None if m is None else m.group(1)


_parse_uri_cached = lru_cache(maxsize=4096)(_parse_uri)
_parse_name_addr_cached = lru_cache(maxsize=4096)(_parse_name_addr)


def split_header_list(value: str) -> list[str]:
    """Split a comma-joined header value (`#element`), ignoring commas inside quotes or <...>."""
    if "," not in value:
        return [value.strip()] if value.strip() else []
    out: list[str] = []
    depth, quoted, start, i = 0, False, 0, 0
    while i < len(value):
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif c == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [v for v in out if v]


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One parsed message. Header names are lower-case full names (compact forms expanded)."""

    method: str | None  # None for a response
    request_uri: str | None
    status: int | None  # None for a request
    reason: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    # first value of each header, for O(1) lookups on the hot path
    first: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def header(self, name: str) -> str | None:
        """The first value of a header (name in any case, compact forms accepted)."""
        value = self.first.get(name)
        if value is None:
            name = name.lower()
            value = self.first.get(COMPACT_FORMS.get(name, name))
        return value

    def header_values(self, name: str) -> list[str]:
        """All values of a header: repeated lines and comma-joined values, in order."""
        name = name.lower()
        name = COMPACT_FORMS.get(name, name)
        out: list[str] = []
        for key, value in self.headers:
            if key == name:
                out.extend(split_header_list(value))
        return out

    def uri(self) -> SipUri:
        if self.request_uri is None:
            raise SipParseError("not_a_request")
        return parse_uri(self.request_uri)

    def name_addr(self, name: str) -> NameAddr | None:
        value = self.header(name)
        return None if value is None else parse_name_addr(value)

    @property
    def call_id(self) -> str | None:
        return self.header("call-id")

    @property
    def user_agent(self) -> str | None:
        return self.header("user-agent")

    @property
    def cseq(self) -> tuple[int, str] | None:
        """CSeq = 1*DIGIT LWS Method"""
        value = self.header("cseq")
        if value is None:
            return None
        num, _, method = value.strip().partition(" ")
        if not num.isdigit() or len(num) > 10 or not method.strip():
            raise SipParseError("bad_cseq", value)
        return int(num), method.strip().upper()


def _content_length(value: str) -> int:
    # Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT
    value = value.strip()
    if not value.isdigit() or len(value) > 9:
        raise SipParseError("bad_content_length", value)
    return int(value)


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    # message = start-line *message-header CRLF [ message-body ]; a bare LF is tolerated, as
    # real stacks accept it
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    # no blank line: a UDP message may end right after the last header
    return data.rstrip(b"\r\n"), b""


# field-names already validated, lower-cased and expanded: most messages reuse the same dozen
# names, so the per-line regex runs once per name, not once per line (bounded cache)
_NAME_CACHE: dict[str, str] = {}


def _parse_headers(text: str, limits: Limits) -> list[tuple[str, str]]:
    count = text.count("\n") + 1
    if count > limits.max_headers * 4:
        raise SipParseError("too_many_headers")
    lines = text.split("\r\n")
    if (
        len(lines) == count  # every LF is part of a CRLF ...
        and text.count("\r") == count - 1  # ... and so is every CR
        and count <= limits.max_headers
        and len(text) <= limits.max_line
    ):
        # the common case, checked once for the whole head: no bare CR or LF, no line over the
        # limit. A folded line starts with a space, so its "name" is never in the cache of
        # validated names and it falls through to the careful loop below, as does anything odd.
        fast: list[tuple[str, str]] = []
        cache = _NAME_CACHE
        for line in lines:
            raw, colon, value = line.partition(":")
            name = cache.get(raw)
            if name is None or not colon:
                break
            fast.append((name, value.strip(" \t")))  # LWS only, as below
        else:
            return fast
    headers: list[tuple[str, str]] = []
    for line in text.split("\n"):
        line = line[:-1] if line.endswith("\r") else line
        if len(line) > limits.max_line:
            raise SipParseError("line_too_long", line[:40])
        if "\r" in line:
            raise SipParseError("bad_header", line[:40])
        if line[:1] in (" ", "\t"):
            # LWS = [*WSP CRLF] 1*WSP : a folded line continues the previous header value
            if not headers:
                raise SipParseError("bad_folding", line[:40])
            name, value = headers[-1]
            value = f"{value} {line.strip()}".strip()
            if len(value) > limits.max_line:
                raise SipParseError("line_too_long", name)
            headers[-1] = (name, value)
            continue
        raw, colon, value = line.partition(":")
        if not colon:
            raise SipParseError("bad_header", line[:40])
        cached = _NAME_CACHE.get(raw)
        if cached is not None:
            name = cached
        else:
            stripped = raw.rstrip(" \t")
            if not _HEADER_NAME.fullmatch(stripped):
                raise SipParseError("bad_header", line[:40])
            name = COMPACT_FORMS.get(stripped.lower(), stripped.lower())
            if len(_NAME_CACHE) < 512:
                _NAME_CACHE[raw] = name
        headers.append((name, value.strip(" \t")))
        if len(headers) > limits.max_headers:
            raise SipParseError("too_many_headers")
    return headers


def parse_message(
    data: bytes, limits: Limits = DEFAULT_LIMITS, *, stream: bool = False
) -> SipMessage:
    """Parse one whole message. With `stream=True` (TCP) Content-Length is mandatory and exact."""
    if len(data) > limits.max_message:
        raise SipParseError("too_large", str(len(data)))
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start-line
    if not data:
        raise SipParseError("empty")
    head_bytes, body = _split_head(data)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("bad_encoding", str(exc.start)) from None
    start, _, rest = head.partition("\n")
    start = start.rstrip("\r")
    if len(start) > limits.max_line:
        raise SipParseError("line_too_long", "start-line")
    method: str | None = None
    request_uri: str | None = None
    status: int | None = None
    reason = ""
    if start.startswith("SIP/"):
        sm = STATUS_LINE.fullmatch(start)
        if sm is None:
            raise SipParseError("bad_status_line", start)
        version, status, reason = sm.group(1), int(sm.group(2)), sm.group(3)
    else:
        rm = REQUEST_LINE.fullmatch(start)
        if rm is None:
            raise SipParseError("bad_request_line", start)
        method, request_uri, version = rm.group(1), rm.group(2), rm.group(3)
    headers = _parse_headers(rest, limits) if rest else []
    first = dict(reversed(headers))  # reversed: the first occurrence of a name wins
    length_value = first.get("content-length")
    if length_value is not None:
        length = _content_length(length_value)
        if len(body) < length:
            raise SipParseError("truncated_body", f"{len(body)} < {length}")
        if stream and len(body) != length:
            raise SipParseError("trailing_data", f"{len(body)} != {length}")
        body = body[:length]  # RFC 3261 18.3: extra octets of a datagram are discarded
    elif stream:
        raise SipParseError("missing_content_length")
    return SipMessage(method, request_uri, status, reason, version, tuple(headers), body, first)


# Content-Length header at the start of a line, full or compact name, inside the head (bytes)
_CL_BYTES = re.compile(
    rb"(?:^|\n)(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,9})[ \t]*\r?$", re.I | re.M
)


class StreamFramer:
    """Cuts a TCP byte stream into whole SIP messages (RFC 3261 18.3: framed by Content-Length).

    `feed(data)` returns the messages completed so far (several per segment, or one joined from
    several segments). Once the stream is broken it raises SipParseError and stays broken: a
    stream cannot be resynchronised, and the caller drops the flow.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self.broken: str | None = None

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self.broken is not None:
            raise SipParseError(self.broken)
        self._buf += data
        out: list[bytes] = []
        while True:
            # keep-alives (RFC 5626 CRLFCRLF ping / CRLF pong) between messages
            while self._buf[:2] == b"\r\n" or self._buf[:1] == b"\n":
                del self._buf[: 2 if self._buf[:1] == b"\r" else 1]
            if not self._buf:
                return out
            end = self._buf.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                end, sep = self._buf.find(b"\n\n"), 2
            if end < 0:
                if len(self._buf) > self.limits.max_message:
                    self._break("too_large")
                return out
            m = _CL_BYTES.search(self._buf, 0, end)
            if m is None:
                self._break("missing_content_length")
            total = end + sep + int(m.group(1)) if m else 0
            if total > self.limits.max_message:
                self._break("too_large")
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]

    def _break(self, reason: str) -> None:
        self.broken = reason
        self._buf.clear()
        raise SipParseError(reason)
