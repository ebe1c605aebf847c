"""Feed bodies -> networks. Pure: bytes in, typed results out; nothing here raises on garbage
except `FeedError`, which means "keep the last good list" to the caller.

Every entry goes through `entry()`: an address or CIDR (host bits cleared), no wider than the
enforcer ever bans (policy.guard.MIN_PREFIX), nothing special-purpose that a feed has no business
blocking (loopback, link-local, multicast, unspecified). Anything else is counted as invalid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sipguard.policy.blocklist import Prefix, last, parse_prefix
from sipguard.policy.guard import ALWAYS_REFUSED, MIN_PREFIX

MAX_LINE = 200  # characters of one plain-list line worth looking at
# integer spans: comparing ints is ~20x cheaper than ipaddress's overlaps() per entry
_REFUSED = tuple(
    (n.version, int(n.network_address), int(n.broadcast_address)) for n, _ in ALWAYS_REFUSED
)


class FeedError(Exception):
    """This body (or answer) cannot be used: the feed keeps its last good list."""


@dataclass(slots=True)
class Parsed:
    networks: list[Prefix] = field(default_factory=list)
    invalid: int = 0  # entries that are not usable addresses/CIDRs (counted, skipped)
    over_cap: int = 0  # valid entries beyond the feed's max_entries (counted, skipped)


def entry(text: str) -> Prefix | None:
    """One address or CIDR, or None when it is not one a feed may block."""
    text = text.strip()
    if not text or len(text) > 64:
        return None
    p = parse_prefix(text)
    if p is None or p[2] < MIN_PREFIX[p[0]]:
        return None
    lo, hi = p[1], last(p)
    for version, first, end in _REFUSED:
        if version == p[0] and first <= hi and lo <= end:
            return None
    return p


def _add(out: Parsed, text: str, max_entries: int) -> Prefix | None:
    net = entry(text)
    if net is None:
        out.invalid += 1
    elif len(out.networks) >= max_entries:
        out.over_cap += 1
        return None
    else:
        out.networks.append(net)
    return net


def parse_plain(body: bytes, max_entries: int) -> Parsed:
    """One address or CIDR per line, `#` (or `;`) starts a comment, first word counts (VoIPBL
    and most public lists). Not text, or nothing valid among non-comment lines: FeedError."""
    if b"\x00" in body:
        raise FeedError("not a text list (NUL bytes)")
    text = body.decode("utf-8", errors="replace")
    out = Parsed()
    lines = 0
    for raw in text.splitlines():
        line = raw[:MAX_LINE].split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        lines += 1
        _add(out, line.split()[0], max_entries)
    if lines and not out.networks:
        raise FeedError(f"no valid entry among {lines} lines")
    return out


def _json(body: bytes) -> object:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FeedError(f"not JSON: {str(exc)[:120]}") from None


@dataclass(slots=True)
class ApibanPage(Parsed):
    cursor: str | None = None  # the ID to ask for next; None: the answer had none
    no_new: bool = False  # APIBAN's "no new bans" answer


def parse_apiban(body: bytes, max_entries: int) -> ApibanPage:
    """`{"ipaddress": [...], "ID": "..."}`; "no new bans" is `{"ipaddress": ["no new bans"],
    "ID": "none"}` (sent with HTTP 400, which the caller passes through to here)."""
    data = _json(body)
    if not isinstance(data, dict) or not isinstance(data.get("ipaddress"), list):
        raise FeedError("APIBAN answer without an 'ipaddress' list")
    items = data["ipaddress"]
    cursor = data.get("ID")
    page = ApibanPage()
    if items == ["no new bans"] or cursor == "none":
        page.no_new = True
        return page
    if isinstance(cursor, str | int) and not isinstance(cursor, bool):
        text = str(cursor)
        page.cursor = text if text.isalnum() and len(text) <= 40 else None
    for item in items:
        if isinstance(item, str):
            _add(page, item, max_entries)
        else:
            page.invalid += 1
    return page


@dataclass(slots=True)
class CrowdsecDelta:
    new: list[tuple[Prefix, float]] = field(default_factory=list)  # entry, seconds left
    deleted: list[Prefix] = field(default_factory=list)
    invalid: int = 0
    over_cap: int = 0
    skipped: int = 0  # decisions that are not bans (captcha, ...) or of another scope


def parse_crowdsec(body: bytes, max_entries: int) -> CrowdsecDelta:
    """LAPI `/v1/decisions/stream`: `{"new": [decision...] | null, "deleted": [...] | null}`,
    a decision being `{"scope": "Ip"|"Range", "value": ..., "type": "ban", "duration":
    "3h59m58.5s", ...}`."""
    data = _json(body)
    if not isinstance(data, dict) or not {"new", "deleted"} & set(data):
        raise FeedError("LAPI answer without 'new' or 'deleted'")
    out = CrowdsecDelta()
    for key in ("new", "deleted"):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise FeedError(f"LAPI '{key}' is not a list")
        for d in items:
            net = _decision(d, out)
            if net is None:
                continue
            if key == "deleted":
                out.deleted.append(net)
            elif len(out.new) >= max_entries:
                out.over_cap += 1
            else:
                seconds = go_duration(d.get("duration"))
                if seconds is None or seconds <= 0:
                    out.invalid += 1
                else:
                    out.new.append((net, seconds))
    return out


def _decision(d: object, out: CrowdsecDelta) -> Prefix | None:
    if not isinstance(d, dict) or not isinstance(d.get("value"), str):
        out.invalid += 1
        return None
    scope = str(d.get("scope", "")).lower()
    if str(d.get("type", "")).lower() != "ban" or scope not in ("ip", "range"):
        out.skipped += 1
        return None
    net = entry(d["value"])
    if net is None:
        out.invalid += 1
    return net


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(value: object) -> float | None:
    """Go's time.Duration text ("167h59m58.123s", "-5s") -> seconds; None if it is not one."""
    if not isinstance(value, str) or not 0 < len(value) <= 40:
        return None
    text, sign = value, 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    total, i = 0.0, 0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < len(text) and not (text[k].isdigit() or text[k] == "."):
            k += 1
        number, unit = text[i:j], text[j:k]
        if not number or unit not in _UNITS:
            return None
        try:
            total += float(number) * _UNITS[unit]
        except ValueError:
            return None
        i = k
    return sign * total
