"""Helpers shared by the checks: Asterisk booleans, ACL order, address scope, secret strength."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from functools import lru_cache

from sipguard.audit.model import Entry, Finding, Section, Severity

TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})
MIN_SECRET = 12
MAX_SCORED_SECRET = 100  # zxcvbn is quadratic-ish; longer secrets are strong anyway
COMMON_PASSWORD_RANK = 10_000


def is_true(value: str) -> bool:
    return value.strip().lower() in TRUE_WORDS


def host_of(address: str) -> str:
    """The host part of `host`, `host:port`, `[v6]:port` or a bare IPv6 address."""
    text = address.strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def port_of(address: str) -> int | None:
    """The port of `host:port` or `[v6]:port`; None without one (or not a port number)."""
    text = address.strip()
    if text.startswith("["):
        _, _, rest = text.partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        port = text.split(":", 1)[1]
    else:
        port = ""
    port = port.strip()
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def is_loopback(address: str) -> bool:
    host = host_of(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_any_address(address: str) -> bool:
    return host_of(address) in ("0.0.0.0", "::", "")


def acl_entries(section: Section, prefix: str = "") -> list[Entry]:
    keys = {prefix + "permit", prefix + "deny"}
    return [e for e in section.entries if e.key.lower() in keys]


def has_acl(section: Section, extra: Iterable[str] = ()) -> bool:
    names = {"permit", "deny", *extra}
    return any(e.key.lower() in names and e.value for e in section.entries)


def _covers_everything(value: str) -> bool:
    net = value.split("/", 1)
    mask = net[1] if len(net) > 1 else ""
    return net[0].strip() in ("0.0.0.0", "::") and mask.strip() in ("0", "0.0.0.0", "")


def open_permit(section: Section) -> Entry | None:
    """The permit that admits every address, if any: the last rule matching everything wins."""
    covering = [
        e
        for e in section.entries
        if e.key.lower() in ("permit", "deny") and _covers_everything(e.value)
    ]
    last = covering[-1] if covering else None
    return last if last is not None and last.key.lower() == "permit" else None


def acl_order(section: Section, file_id: str, what: str) -> list[Finding]:
    """Asterisk applies permit/deny in order and the last match wins."""
    out: list[Finding] = []
    rules = [e for e in section.entries if e.key.lower() in ("permit", "deny")]
    if not rules:
        return out
    first = rules[0]
    if first.key.lower() == "permit" and not any(
        r.key.lower() == "deny" and _covers_everything(r.value) for r in rules
    ):
        out.append(
            Finding(
                f"{file_id}-ACL-ORDER",
                Severity.MEDIUM,
                first.file,
                first.line,
                f"{what} [{section.name}] has permit without a 'deny=0.0.0.0/0.0.0.0' before it: "
                "everything not denied is allowed, so the permit restricts nothing",
                "Put 'deny=0.0.0.0/0.0.0.0' first, then the permit lines.",
            )
        )
    seen_permit = False
    for rule in rules:
        if rule.key.lower() == "permit":
            seen_permit = True
        elif seen_permit and _covers_everything(rule.value):
            out.append(
                Finding(
                    f"{file_id}-ACL-ORDER",
                    Severity.LOW,
                    rule.file,
                    rule.line,
                    f"{what} [{section.name}] denies everything after its permit lines; the last "
                    "matching rule wins, so the permits never apply",
                    "Move 'deny=0.0.0.0/0.0.0.0' above the permit lines.",
                )
            )
            break
    return out


def char_classes(secret: str) -> int:
    return sum(
        (
            any(c.islower() for c in secret),
            any(c.isupper() for c in secret),
            any(c.isdigit() for c in secret),
            any(not c.isalnum() for c in secret),
        )
    )


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"][:COMMON_PASSWORD_RANK])


@lru_cache(maxsize=4096)
def _zxcvbn_score(secret: str, inputs: tuple[str, ...]) -> int:
    from zxcvbn import zxcvbn

    return int(zxcvbn(secret[:MAX_SCORED_SECRET], user_inputs=list(inputs))["score"])


def secret_findings(
    entry: Entry,
    what: str,
    names: Iterable[str],
    prefix: str = "SEC",
    cap: Severity = Severity.CRITICAL,
) -> list[Finding]:
    """Weakness findings for one secret. `names` are the user name, extension and section.

    `cap` limits the severity for secrets a provider chose (trunks), which harden cannot change.
    """
    secret = entry.value
    related = tuple(sorted({n for n in names if n}))
    fix = "Replace it with a random secret of 16+ characters (sipguard harden does this)."
    out: list[Finding] = []

    def add(fid: str, sev: Severity, msg: str) -> None:
        sev = min(sev, cap)
        out.append(Finding(f"{prefix}-{fid}", sev, entry.file, entry.line, f"{what}: {msg}", fix))

    if not secret:
        add("EMPTY", Severity.CRITICAL, "the secret is empty")
        return out
    if secret.lower() in _common_passwords():
        add("COMMON", Severity.CRITICAL, "the secret is a well-known common password")
    if len(secret) < MIN_SECRET:
        add("SHORT", Severity.HIGH, f"the secret has {len(secret)} characters (< {MIN_SECRET})")
    if char_classes(secret) < 3:
        add("CLASSES", Severity.MEDIUM, "the secret uses fewer than 3 character classes")
    lowered = secret.lower()
    if any(len(n) >= 2 and n.lower() in lowered for n in related):
        add("CONTAINS-NAME", Severity.HIGH, "the secret contains the user name or extension")
    if _zxcvbn_score(secret, related) < 3:
        add("GUESSABLE", Severity.HIGH, "zxcvbn rates the secret as guessable (score < 3)")
    return out


NUMERIC = re.compile(r"^\+?\d+$")


def username_findings(
    entry_file: str, line: int, username: str, extension: str, what: str, prefix: str = "SEC"
) -> list[Finding]:
    fix = (
        "Use an opaque user name and keep the extension in the dialplan "
        "(sipguard harden does this)."
    )
    if NUMERIC.match(username):
        same = " and equal to the extension" if username == extension else ""
        return [
            Finding(
                f"{prefix}-USERNAME",
                Severity.MEDIUM,
                entry_file,
                line,
                f"{what}: user name '{username}' is numeric{same}; scanners enumerate these",
                fix,
            )
        ]
    if extension and username == extension:
        return [
            Finding(
                f"{prefix}-USERNAME",
                Severity.MEDIUM,
                entry_file,
                line,
                f"{what}: user name equals the extension '{extension}'",
                fix,
            )
        ]
    return []


def extension_of(section: Section) -> str:
    if NUMERIC.match(section.name):
        return section.name
    callerid = section.value("callerid")
    match = re.search(r"<(\+?\d+)>", callerid)
    return match.group(1) if match else ""
