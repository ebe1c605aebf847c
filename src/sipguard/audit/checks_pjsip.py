"""Checks for res_pjsip (pjsip.conf)."""

from __future__ import annotations

from sipguard.audit.common import (
    NUMERIC,
    has_acl,
    is_any_address,
    is_true,
    secret_findings,
    username_findings,
)
from sipguard.audit.model import Config, Finding, Section, Severity, Tree

ACL_KEYS = ("acl", "contact_acl", "contact_permit", "contact_deny")
MAX_CONTACTS = 3
DEFAULT_UNIDENTIFIED_COUNT = 5
DEFAULT_UNIDENTIFIED_PERIOD = 5


def split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def identified_endpoints(config: Config) -> set[str]:
    return {s.value("endpoint") for s in config.by_type("identify") if s.value("endpoint")}


def outbound_only_auths(config: Config) -> set[str]:
    """Auth objects used only to authenticate *to* a provider: their passwords are not ours."""
    inbound: set[str] = set()
    outbound: set[str] = set()
    for section in config.objects():
        inbound.update(
            split_list(section.value("auth")) if section.value("type") == "endpoint" else []
        )
        outbound.update(split_list(section.value("outbound_auth")))
    return outbound - inbound


def unauthenticated_contexts(tree: Tree) -> list[tuple[str, str, str, int]]:
    """(why, context, file, line) for PJSIP endpoints that take calls without a password."""
    config = tree.config("pjsip.conf")
    if config is None:
        return []
    identified = identified_endpoints(config)
    out = []
    for ep in config.by_type("endpoint"):
        if ep.name == "anonymous" or (not ep.value("auth") and ep.name not in identified):
            entry = ep.get("context")
            where = (entry.file, entry.line) if entry else (ep.file, ep.line)
            why = (
                "PJSIP anonymous endpoint"
                if ep.name == "anonymous"
                else (f"PJSIP endpoint [{ep.name}] without auth")
            )
            out.append((why, ep.value("context", "default"), *where))
    return out


def check_pjsip(tree: Tree) -> list[Finding]:
    config = tree.config("pjsip.conf")
    if config is None:
        return []
    out: list[Finding] = []
    identified = identified_endpoints(config)
    endpoints = config.by_type("endpoint")
    for ep in endpoints:
        out.extend(_check_endpoint(ep, ep.name in identified))
    skip = outbound_only_auths(config)
    owners: dict[str, list[str]] = {}
    for ep in endpoints:
        for name in split_list(ep.value("auth")):
            owners.setdefault(name, []).append(ep.name)
    for auth in config.by_type("auth"):
        if auth.name not in skip:
            out.extend(_check_auth(auth, owners.get(auth.name, [])))
    for aor in config.by_type("aor"):
        entry = aor.get("max_contacts")
        if entry is not None and entry.value.isdigit() and int(entry.value) > MAX_CONTACTS:
            out.append(
                Finding(
                    "PJS-MAXCONTACTS",
                    Severity.LOW,
                    entry.file,
                    entry.line,
                    f"pjsip.conf aor [{aor.name}] allows {entry.value} contacts: a stolen password "
                    "registers beside the real phone unnoticed",
                    "Set max_contacts=1 and remove_existing=yes for single phones.",
                )
            )
    for transport in config.by_type("transport"):
        out.extend(_check_transport(transport))
    for section in config.by_type("global"):
        out.extend(_check_global(section))
    return out


def _check_endpoint(ep: Section, identified: bool) -> list[Finding]:
    out: list[Finding] = []
    what = f"pjsip.conf endpoint [{ep.name}]"
    if ep.name == "anonymous":
        out.append(
            Finding(
                "PJS-ANONYMOUS",
                Severity.HIGH,
                ep.file,
                ep.line,
                f"{what} takes calls from anyone into context '{ep.value('context', 'default')}'",
                "Remove the anonymous endpoint (or point it at a context with local extensions "
                "only).",
            )
        )
        return out
    if not ep.value("auth") and not identified:
        out.append(
            Finding(
                "PJS-NOAUTH",
                Severity.HIGH,
                ep.file,
                ep.line,
                f"{what} has neither auth= nor an identify section: calls that name it are "
                "accepted without a password",
                "Add an auth object (or an identify section with the provider's addresses).",
            )
        )
    if not identified and not has_acl(ep, ACL_KEYS):
        out.append(
            Finding(
                "PJS-NOACL",
                Severity.MEDIUM,
                ep.file,
                ep.line,
                f"{what} has no acl, contact_acl, permit/deny or identify",
                "Add deny=0.0.0.0/0.0.0.0 and permit=<phone network> (harden --logs suggests it).",
            )
        )
    options = ep.get("allow_unauthenticated_options")
    if options is not None and is_true(options.value):
        out.append(
            Finding(
                "PJS-OPTIONS",
                Severity.LOW,
                options.file,
                options.line,
                f"{what} answers OPTIONS without authentication, confirming it exists to scanners",
                "Remove allow_unauthenticated_options.",
            )
        )
    identify_by = split_list(ep.value("identify_by", "username,ip").lower())
    if "username" in identify_by and NUMERIC.match(ep.name):
        out.extend(username_findings(ep.file, ep.line, ep.name, ep.name, what))
    return out


def _check_auth(auth: Section, owners: list[str]) -> list[Finding]:
    out: list[Finding] = []
    what = f"pjsip.conf auth [{auth.name}]"
    username = auth.get("username")
    if username is not None:
        extension = owners[0] if owners and NUMERIC.match(owners[0]) else ""
        out.extend(username_findings(username.file, username.line, username.value, extension, what))
    if auth.value("auth_type", "userpass").lower() != "userpass":
        return out
    password = auth.get("password")
    if password is None:
        out.append(
            Finding(
                "SEC-EMPTY",
                Severity.CRITICAL,
                auth.file,
                auth.line,
                f"{what} has no password",
                "Set a strong password.",
            )
        )
        return out
    names = [auth.name, auth.value("username"), *owners]
    out.extend(secret_findings(password, f"{what} password", names))
    return out


def _check_transport(transport: Section) -> list[Finding]:
    protocol = transport.value("protocol", "udp").lower()
    bind = transport.get("bind")
    if bind is None or protocol in ("tls", "wss") or not is_any_address(bind.value):
        return []
    return [
        Finding(
            "PJS-TRANSPORT",
            Severity.MEDIUM,
            bind.file,
            bind.line,
            f"pjsip.conf transport [{transport.name}] listens on all addresses over "
            f"{protocol.upper()} without TLS: credentials and calls cross the Internet in clear",
            "Bind to the LAN address, or add a TLS transport for remote phones.",
        )
    ]


def _check_global(section: Section) -> list[Finding]:
    out: list[Finding] = []
    count = section.get("unidentified_request_count")
    if count is not None and (
        not count.value.isdigit() or int(count.value) > DEFAULT_UNIDENTIFIED_COUNT
    ):
        out.append(
            Finding(
                "PJS-UNIDENTIFIED",
                Severity.LOW,
                count.file,
                count.line,
                f"unidentified_request_count={count.value} lets a scanner send more unmatched "
                f"requests than the default {DEFAULT_UNIDENTIFIED_COUNT} before it is noticed",
                f"Use unidentified_request_count={DEFAULT_UNIDENTIFIED_COUNT} or less.",
            )
        )
    period = section.get("unidentified_request_period")
    if period is not None and (
        not period.value.isdigit() or int(period.value) < DEFAULT_UNIDENTIFIED_PERIOD
    ):
        out.append(
            Finding(
                "PJS-UNIDENTIFIED",
                Severity.LOW,
                period.file,
                period.line,
                f"unidentified_request_period={period.value} is shorter than the default "
                f"{DEFAULT_UNIDENTIFIED_PERIOD}s, so slow scans are never counted",
                f"Use unidentified_request_period={DEFAULT_UNIDENTIFIED_PERIOD} or more.",
            )
        )
    return out
