"""Checks for chan_sip (sip.conf) and IAX2 (iax.conf)."""

from __future__ import annotations

from sipguard.audit.common import (
    acl_order,
    extension_of,
    has_acl,
    is_true,
    secret_findings,
    username_findings,
)
from sipguard.audit.model import Config, Finding, Section, Severity, Tree

MAX_CALL_LIMIT = 10
PEER_TYPES = ("peer", "friend", "user")


def _where(config: Config, section: Section | None) -> tuple[str, int]:
    if section is not None:
        return section.file, section.line
    return config.name, 1


def sip_guest_context(tree: Tree) -> tuple[str, str, int] | None:
    """(context, file, line) where unauthenticated chan_sip calls land; None if guests are off."""
    config = tree.config("sip.conf")
    if config is None:
        return None
    general = config.section("general")
    if general is not None and not is_true(general.value("allowguest", "yes")):
        return None
    entry = general.get("context") if general else None
    if entry is not None:
        return entry.value, entry.file, entry.line
    file, line = _where(config, general)
    return "default", file, line


def check_sip(tree: Tree) -> list[Finding]:
    config = tree.config("sip.conf")
    if config is None:
        return []
    out: list[Finding] = []
    general = config.section("general")
    guest = general.get("allowguest") if general else None
    if guest is None or is_true(guest.value):
        file, line = (guest.file, guest.line) if guest else _where(config, general)
        context = general.value("context", "default") if general else "default"
        out.append(
            Finding(
                "SIP-ALLOWGUEST",
                Severity.HIGH,
                file,
                line,
                f"allowguest is on (the default): anyone can place calls into context '{context}' "
                "without a password",
                "Set allowguest=no in [general].",
            )
        )
    reject = general.get("alwaysauthreject") if general else None
    if reject is not None and not is_true(reject.value):
        out.append(
            Finding(
                "SIP-AUTHREJECT",
                Severity.MEDIUM,
                reject.file,
                reject.line,
                "alwaysauthreject=no answers unknown users with 404, so scanners learn which "
                "extensions exist",
                "Set alwaysauthreject=yes in [general].",
            )
        )
    for peer in config.objects():
        kind = peer.value("type").lower()
        if peer.name == "general" or kind not in PEER_TYPES:
            continue
        out.extend(_check_peer(peer, kind))
    return out


def _check_peer(peer: Section, kind: str) -> list[Finding]:
    out: list[Finding] = []
    dynamic = peer.value("host").lower() == "dynamic"
    what = f"sip.conf peer [{peer.name}]"
    if not has_acl(peer):
        if kind == "friend" and dynamic:
            out.append(
                Finding(
                    "SIP-FRIEND-NOACL",
                    Severity.MEDIUM,
                    peer.file,
                    peer.line,
                    f"{what} is type=friend with host=dynamic and no permit/deny: it can register "
                    "and call from any address on the Internet",
                    "Add deny=0.0.0.0/0.0.0.0 and permit=<phone network> "
                    "(harden --logs suggests it).",
                )
            )
        else:
            out.append(
                Finding(
                    "SIP-NOACL",
                    Severity.MEDIUM if dynamic else Severity.LOW,
                    peer.file,
                    peer.line,
                    f"{what} has no permit/deny",
                    "Add deny=0.0.0.0/0.0.0.0 and permit=<network>.",
                )
            )
    out.extend(acl_order(peer, "SIP", "sip.conf peer"))
    insecure = peer.get("insecure")
    if insecure is not None:
        value = insecure.value.lower()
        if "invite" in value or value == "very":
            out.append(
                Finding(
                    "SIP-INSECURE",
                    Severity.HIGH if dynamic else Severity.MEDIUM,
                    insecure.file,
                    insecure.line,
                    f"{what} has insecure={insecure.value}: INVITEs are accepted without a "
                    "password",
                    "Remove insecure=invite; keep it only on provider trunks with a fixed host.",
                )
            )
        elif "port" in value:
            out.append(
                Finding(
                    "SIP-INSECURE",
                    Severity.LOW,
                    insecure.file,
                    insecure.line,
                    f"{what} has insecure=port: it matches on IP address only",
                    "Remove insecure=port unless the provider needs it.",
                )
            )
    limit = peer.get("call-limit")
    if limit is None:
        out.append(
            Finding(
                "SIP-CALLLIMIT",
                Severity.LOW,
                peer.file,
                peer.line,
                f"{what} has no call-limit: a stolen account can run many calls at once",
                "Set call-limit=4 (or the number of lines the phone really has).",
            )
        )
    elif not limit.value.isdigit() or int(limit.value) > MAX_CALL_LIMIT:
        out.append(
            Finding(
                "SIP-CALLLIMIT",
                Severity.LOW,
                limit.file,
                limit.line,
                f"{what} has call-limit={limit.value} (more than {MAX_CALL_LIMIT})",
                "Lower call-limit to what the device needs.",
            )
        )
    extension = extension_of(peer)
    secret = peer.get("secret")
    if secret is not None:
        names = [peer.name, extension, peer.value("defaultuser")]
        # A fixed-host peer is a provider trunk whose secret the provider chose.
        cap = Severity.CRITICAL if dynamic else Severity.MEDIUM
        out.extend(secret_findings(secret, f"{what} secret", names, cap=cap))
    elif peer.get("md5secret") is None and dynamic:
        out.append(
            Finding(
                "SEC-EMPTY",
                Severity.CRITICAL,
                peer.file,
                peer.line,
                f"{what} has host=dynamic and no secret",
                "Set a strong secret.",
            )
        )
    if dynamic:
        out.extend(username_findings(peer.file, peer.line, peer.name, extension, what))
    return out


def iax_guest_context(tree: Tree) -> tuple[str, str, int] | None:
    config = tree.config("iax.conf")
    if config is None:
        return None
    guest = config.section("guest")
    if guest is None or guest.get("secret") is not None:
        return None
    entry = guest.get("context")
    if entry is not None:
        return entry.value, entry.file, entry.line
    return "default", guest.file, guest.line


def check_iax(tree: Tree) -> list[Finding]:
    config = tree.config("iax.conf")
    if config is None:
        return []
    out: list[Finding] = []
    for section in config.sections:
        auth = section.get("auth")
        if auth is not None and "plaintext" in auth.value.lower():
            out.append(
                Finding(
                    "IAX-PLAINTEXT",
                    Severity.HIGH,
                    auth.file,
                    auth.line,
                    f"iax.conf [{section.name}] allows plaintext authentication",
                    "Use auth=md5 (or rsa).",
                )
            )
    guest = iax_guest_context(tree)
    guest_section = config.section("guest")
    if guest is not None and guest_section is not None:
        context = guest[0]
        out.append(
            Finding(
                "IAX-GUEST",
                Severity.HIGH,
                guest_section.file,
                guest_section.line,
                f"iax.conf [guest] takes calls without a secret into context '{context}'",
                "Remove the [guest] user or point it at a context that only reaches local "
                "extensions.",
            )
        )
    for peer in config.objects():
        kind = peer.value("type").lower()
        if peer.name in ("general", "guest") or kind not in PEER_TYPES:
            continue
        what = f"iax.conf [{peer.name}]"
        dynamic = peer.value("host").lower() == "dynamic"
        if not has_acl(peer):
            out.append(
                Finding(
                    "IAX-NOACL",
                    Severity.MEDIUM,
                    peer.file,
                    peer.line,
                    f"{what} has no permit/deny",
                    "Add deny=0.0.0.0/0.0.0.0 and permit=<network>.",
                )
            )
        out.extend(acl_order(peer, "IAX", "iax.conf"))
        if is_true(peer.value("trunk")) and dynamic:
            out.append(
                Finding(
                    "IAX-TRUNK",
                    Severity.MEDIUM,
                    peer.file,
                    peer.line,
                    f"{what} is a trunk with host=dynamic: any address holding the secret is a "
                    "trunk",
                    "Give trunks a fixed host and a permit line for the provider's addresses.",
                )
            )
        extension = extension_of(peer)
        secret = peer.get("secret")
        if secret is not None:
            names = [peer.name, extension, peer.value("username")]
            cap = Severity.CRITICAL if dynamic or kind == "user" else Severity.MEDIUM
            out.extend(secret_findings(secret, f"{what} secret", names, cap=cap))
        if dynamic or kind == "user":
            out.extend(username_findings(peer.file, peer.line, peer.name, extension, what))
    return out
