"""Sans-I/O Asterisk Manager Interface (AMI) framer: bytes in, messages out.

Wire format (Asterisk main/manager.c): on connect the server sends one banner line
`Asterisk Call Manager/<AMI_VERSION>\\r\\n` (9.0.0 in Asterisk 20, 11.0.0 in 22). After that
every message is a block of `Key: value\\r\\n` lines ended by an empty line. Asterisk itself
accepts a bare `\\n` as line end, so we do too. Values may be empty (`Challenge: ` keeps the
space after the colon, and we strip exactly one space so a value with leading spaces survives).
Keys may repeat (ChanVariable, Variable). Before Asterisk 14 the `Command` action answered
`Response: Follows`, then raw console output ending with `--END COMMAND--`.

Nothing here touches sockets or clocks; the asyncio client and the test server wrap it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

BANNER_PREFIX = "Asterisk Call Manager/"
END_COMMAND = "--END COMMAND--"

#: Defaults sized well above real traffic: Asterisk's own input buffer is 1 KiB a line and
#: 128 headers a message; events with many ChanVariable lines stay far below these.
MAX_MESSAGE_BYTES = 64 * 1024
MAX_FIELDS = 512


_KEY = itemgetter(0)
_VALUE = itemgetter(1)
# One `Key: value` line of a CRLF message, matched only when the line needs nothing special:
# the key is printable ASCII with no space (str.strip leaves it alone) up to the first colon,
# one space after the colon is dropped. A line this does not match sends its message the
# line-by-line way. Each match starts at the LF before its line, so matches begin only at a
# line start, and the literal LF lets the regex engine jump from line to line.
_FIELD = re.compile(r"\n([!-9;-~]+): ?([^\n]*)")


class AmiError(ValueError):
    """An action that cannot be sent safely (bad name, key or value)."""


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One AMI message: ordered fields (keys may repeat), case-insensitive lookup."""

    fields: tuple[tuple[str, str], ...]
    #: raw command output of a `Response: Follows` message (pre-14 Asterisk), else empty
    output: tuple[str, ...] = ()
    #: lower-case key -> first value, built on the first `get` (consumers ask several keys,
    #: often absent ones such as Timestamp, of events with 30+ fields)
    _index: dict[str, str] | None = field(default=None, init=False, compare=False, repr=False)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value for `key` (any case), or `default`."""
        index = self._index
        if index is None:
            # Built from the end, so for a repeated key the first value is the one kept.
            back = self.fields[::-1]
            index = dict(zip(map(str.lower, map(_KEY, back)), map(_VALUE, back), strict=True))
            object.__setattr__(self, "_index", index)
        return index.get(key.lower(), default)

    def get_all(self, key: str) -> list[str]:
        k = key.lower()
        return [value for name, value in self.fields if name.lower() == k]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def to_dict(self) -> dict[str, str]:
        """Fields as a dict; for a repeated key the first value wins."""
        d: dict[str, str] = {}
        for name, value in self.fields:
            d.setdefault(name, value)
        return d

    @property
    def is_event(self) -> bool:
        return self.get("Event") is not None

    @property
    def is_response(self) -> bool:
        return self.get("Response") is not None

    @property
    def name(self) -> str:
        """The event name for events, the response status (Success, Error…) for responses."""
        return self.get("Event") or self.get("Response") or ""

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")


class AmiFramer:
    """Incremental AMI parser. `feed(data)` returns the messages completed by `data`.

    Malformed input never raises: it is counted in `errors` (by reason) and the framer
    resynchronises at the next empty line.
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_fields: int = MAX_FIELDS,
        expect_banner: bool = True,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_fields = max_fields
        self.banner: str | None = None
        self.errors: dict[str, int] = {}
        self._expect_banner = expect_banner
        self._buf = bytearray()
        self._fields: list[tuple[str, str]] = []
        self._output: list[str] = []
        self._size = 0  # bytes of the message being built
        self._follows = False  # inside a `Response: Follows` body
        self._in_output = False
        self._discarding = False  # after an error, skip to the next empty line

    @property
    def version(self) -> str | None:
        """The AMI version from the banner (`9.0.0`), if a banner was seen."""
        if self.banner is None or not self.banner.startswith(BANNER_PREFIX):
            return None
        return self.banner[len(BANNER_PREFIX) :]

    def _count(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1

    def feed(self, data: bytes) -> list[AmiMessage]:
        out: list[AmiMessage] = []
        buf = self._buf
        buf += data
        start = 0
        while True:
            if not self._idle():
                # The banner, or a message begun in an earlier feed or with something unusual
                # in it: line by line until it is over.
                start = self._lines(buf, start, len(buf), out, until_idle=True)
                if not self._idle():
                    break  # no whole line left
            # Between messages: take each whole CRLF message in one piece (the common case).
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            msg = self._whole(bytes(buf[start:end]))
            if msg is None:  # anything unusual: line by line, exactly as always
                start = self._lines(buf, start, end + 4, out)
            else:
                if msg.fields:
                    out.append(msg)
                start = end + 4
        start = self._lines(buf, start, len(buf), out)
        del buf[:start]
        # A partial line that can never fit: drop it now so memory stays bounded.
        if len(buf) + self._size > self.max_message_bytes:
            if not self._discarding:
                self._count("oversize")
                self._reset(discard=True)
            # keep a trailing CR, it may be half of the CRLF that ends this line
            keep = buf[-1:] if buf.endswith(b"\r") else b""
            buf[:] = keep
        return out

    def _lines(
        self, buf: bytearray, start: int, stop: int, out: list[AmiMessage], until_idle: bool = False
    ) -> int:
        """Whole lines in buf[start:stop] (all, or until a message is over); returns the
        offset of the first line not taken."""
        while not (until_idle and self._idle()):
            nl = buf.find(b"\n", start, stop)
            if nl < 0:
                return start
            end = nl - 1 if nl > start and buf[nl - 1] == 0x0D else nl
            line = bytes(buf[start:end])
            self._size += nl + 1 - start
            start = nl + 1
            msg = self._line(line)
            if msg is not None:
                out.append(msg)
        return start

    def _idle(self) -> bool:
        """Between messages, with nothing pending (the banner included)."""
        return not (
            self._size
            or self._fields
            or self._follows
            or self._discarding
            or (self._expect_banner and self.banner is None)
        )

    def _whole(self, block: bytes) -> AmiMessage | None:
        """One message whose lines all end in CRLF, parsed at once; None if it needs the
        line-by-line path (empty or bare-LF lines, Follows, odd keys, bad lines, size).

        A message over the field limit is counted here and returned with no fields.
        """
        if (
            not block
            or block[0] in b"\r\n"
            or len(block) + 2 > self.max_message_bytes
            or block.count(b"\n") != block.count(b"\r\n")
            or b"Follows" in block.partition(b"\n")[0]
        ):
            return None
        # Every line end is CRLF: as LF, a CR left at the end of a line is the value's own.
        text = "\n" + block.decode("utf-8", "replace").replace("\r\n", "\n")
        fields = _FIELD.findall(text)
        if len(fields) != text.count("\n"):
            return None  # a line with no key, a key with spaces around it: counted there
        if len(fields) > self.max_fields:
            self._count("too_many_fields")
            return AmiMessage(())
        return AmiMessage(tuple(fields))

    def _reset(self, *, discard: bool = False) -> None:
        self._fields = []
        self._output = []
        self._size = 0
        self._follows = False
        self._in_output = False
        self._discarding = discard

    def _line(self, raw: bytes) -> AmiMessage | None:
        text = raw.decode("utf-8", "replace")
        if self._expect_banner and self.banner is None:
            self._expect_banner = False
            if text.startswith(BANNER_PREFIX):
                self.banner = text
                self._size = 0
                return None
            # no banner (a proxy, or we joined late): treat the line as a field line
        if text == "":
            return self._end_of_message()
        if self._discarding:
            return None
        if self._size > self.max_message_bytes:
            self._count("oversize")
            self._reset(discard=True)
            return None
        if self._follows and (self._in_output or not _is_follows_header(text)):
            # Raw command output until the end marker (which may trail the last line).
            self._in_output = True
            if text.endswith(END_COMMAND):
                rest = text[: -len(END_COMMAND)]
                if rest:
                    self._output.append(rest)
                self._follows = False
            else:
                self._output.append(text)
            return None
        colon = text.find(":")
        if colon <= 0:
            self._count("bad_line")
            return None
        if len(self._fields) >= self.max_fields:
            self._count("too_many_fields")
            self._reset(discard=True)
            return None
        key = text[:colon].strip()
        value = text[colon + 1 :]
        if value.startswith(" "):
            value = value[1:]
        self._fields.append((key, value))
        if len(self._fields) == 1 and key.lower() == "response" and value == "Follows":
            self._follows = True
        return None

    def _end_of_message(self) -> AmiMessage | None:
        if self._follows and self._in_output:
            # Output may contain empty lines; the message ends only after the marker.
            self._output.append("")
            return None
        if self._discarding:
            self._reset()
            return None
        fields, output = self._fields, self._output
        self._reset()
        if not fields:
            return None  # stray empty line between messages
        return AmiMessage(tuple(fields), tuple(output))


def _is_follows_header(text: str) -> bool:
    # In a Follows reply only these headers precede the raw output, which may itself
    # contain "Key: value"-looking text.
    key = text.partition(":")[0].lower()
    return key in ("privilege", "actionid")


def _check_token(kind: str, s: str) -> None:
    if not s or any(c in s for c in "\r\n\0:") or s != s.strip():
        raise AmiError(f"invalid AMI {kind} {s!r}")


def format_message(fields: Iterable[tuple[str, str]]) -> bytes:
    """Serialise fields as one AMI message (CRLF lines, empty line at the end).

    Raises AmiError on CR, LF or NUL anywhere: a value with a line break would let the
    caller inject extra fields or a whole extra action.
    """
    parts: list[str] = []
    for key, value in fields:
        _check_token("key", key)
        if any(c in value for c in "\r\n\0"):
            raise AmiError(f"line break or NUL in value of AMI field {key!r}")
        parts.append(f"{key}: {value}\r\n")
    if not parts:
        raise AmiError("empty AMI message")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


def build_action(
    name: str,
    fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    action_id: str | None = None,
) -> bytes:
    """Bytes for one action. Pass pairs to repeat a key (`Variable`)."""
    _check_token("action name", name)
    pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    head: list[tuple[str, str]] = [("Action", name)]
    if action_id is not None:
        head.append(("ActionID", action_id))
    return format_message(head + [(k, str(v)) for k, v in pairs])


def md5_key(challenge: str, secret: str) -> str:
    """The `Key` of an `AuthType: MD5` login: hex md5(challenge + secret), as manager.c checks."""
    # MD5 is what the AMI protocol mandates here, not a choice of ours.
    return hashlib.md5((challenge + secret).encode("utf-8"), usedforsecurity=False).hexdigest()
