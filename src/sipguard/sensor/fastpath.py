"""The verdict fast path: the few header values the policy reads, taken straight from the bytes.

`parse_message` builds a full `SipMessage` (every header decoded, stripped, in a tuple and a
dict); the policy then reads five values. `scan_head` reads the same five values from a clean,
ordinary message and returns None for anything else (folding, bare CR/LF, non-ASCII bytes,
leading CRLFs, a missing blank line, an unknown-and-invalid header name, a bad Content-Length,
oversized input ...). None means "let the full parser decide", so the fast path never has to
reproduce an error: it only has to accept exactly what the full parser accepts, with the same
values, and tests check that on a corpus and on generated input.
"""

from __future__ import annotations

import re

from sipguard.core.sip import COMPACT_FORMS, REQUEST_LINE, STATUS_LINE, TOKEN, Limits

__all__ = ["FastHead", "scan_head"]

# the same token grammar as the full parser's, on bytes
_TOKEN = re.compile(TOKEN.encode("ascii"))

# raw field-name as it appears before ":" -> lower-case full name. Phones reuse a dozen
# spellings, so after the first packets every line costs one dict lookup (bounded).
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 512


#: (method, Request-URI, Call-ID, From, To, User-Agent); method and URI are None for a response.
#: A plain tuple: building a NamedTuple costs a Python-level call per packet.
FastHead = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


def _learn(raw: bytes) -> str | None:
    # field-name HCOLON: the name may be followed by spaces or tabs before the colon
    stripped = raw.rstrip(b" \t")
    if not _TOKEN.fullmatch(stripped):
        return None
    low = stripped.decode("ascii").lower()
    name = COMPACT_FORMS.get(low, low)
    if len(_NAMES) < _NAMES_MAX:
        _NAMES[raw] = name
    return name


def _value(first: dict[str, bytes], name: str) -> str | None:
    value = first.get(name)
    return None if value is None else value.strip(b" \t").decode("ascii")


def scan_head(data: bytes, limits: Limits, stream: bool = False) -> FastHead | None:
    """The policy's inputs from an ordinary message, or None when the full parser must look."""
    if len(data) > limits.max_message or data[:1] in (b"\r", b"\n", b""):
        return None
    end = data.find(b"\r\n\r\n")
    if end <= 0 or end > limits.max_line:
        return None  # no blank line, or a head long enough that a line could be over the limit
    head = data[:end]
    if not head.isascii():
        return None  # UTF-8 display names and the like: the full parser decodes them
    lines = head.split(b"\r\n")
    count = len(lines) - 1
    # every CR and every LF belongs to a CRLF line break: no bare CR, no bare LF
    if count > limits.max_headers or head.count(b"\n") != count or head.count(b"\r") != count:
        return None
    start = lines[0].decode("ascii")
    method = uri = None
    if start.startswith("SIP/"):
        if STATUS_LINE.fullmatch(start) is None:
            return None
    else:
        m = REQUEST_LINE.fullmatch(start)
        if m is None:
            return None
        method, uri = m.group(1), m.group(2)
    first: dict[str, bytes] = {}
    names = _NAMES
    for k in range(1, count + 1):
        raw, colon, value = lines[k].partition(b":")
        name = names.get(raw)
        # a folded line starts with a space, so it is never a valid name: full parser
        if (name is None or not colon) and (not colon or (name := _learn(raw)) is None):
            return None
        first.setdefault(name, value)  # the first occurrence of a header wins
    # Content-Length = ( "Content-Length" / "l" ) HCOLON 1*DIGIT ; with stream=True exact
    body = len(data) - end - 4
    length_value = first.get("content-length")
    if length_value is not None:
        digits = length_value.strip(b" \t")
        if not digits.isdigit() or len(digits) > 9:
            return None
        length = int(digits)
        if body < length or (stream and body != length):
            return None
    elif stream:
        return None
    return (
        method,
        uri,
        _value(first, "call-id"),
        _value(first, "from"),
        _value(first, "to"),
        _value(first, "user-agent"),
    )
