"""`sipguard harden`: plan minimal edits that fix what the audit reports.

Opaque user names keep the extension working:
- chan_sip authenticates REGISTER/INVITE by peer *name*, so a numeric peer `[2001]` is renamed to an
  opaque name and every literal `SIP/2001` in the dialplan is rewritten. If the dialplan dials
  chan_sip peers through variables (`SIP/${EXTEN}`), renaming would break calls, so peers are left
  alone and a note says why.
- PJSIP keeps the endpoint (and AOR) named after the extension, so `Dial(PJSIP/3001)` still works;
  the auth object gets an opaque `username` and the endpoint `identify_by=auth_username`, so a
  scanner guessing numeric user names no longer matches anything.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from dataclasses import dataclass, field

from sipguard.audit.checks_pjsip import identified_endpoints, outbound_only_auths, split_list
from sipguard.audit.checks_services import check_logger, check_rtp, http_exposed, weak_pin
from sipguard.audit.checks_sip import iax_guest_context
from sipguard.audit.common import (
    NUMERIC,
    has_acl,
    is_loopback,
    is_true,
    open_permit,
    secret_findings,
)
from sipguard.audit.edits import EditSet
from sipguard.audit.harden_dialplan import add_call_limits, cut_default_paths
from sipguard.audit.model import Entry, Section, Severity, Tree

SECRET_ALPHABET = string.ascii_letters + string.digits + "-_.!"
SECRET_LENGTH = 24
PIN_LENGTH = 8
CALL_LIMIT = "4"
MAX_CALL_LIMIT = 10
LOOPBACK_PERMIT = "127.0.0.1/255.255.255.255"


@dataclass(frozen=True, slots=True)
class Credential:
    file: str
    section: str
    extension: str
    username: str
    secret: str


@dataclass
class Plan:
    edits: EditSet
    credentials: list[Credential] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def new_secret() -> str:
    while True:
        value = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
        if (
            any(c.islower() for c in value)
            and any(c.isupper() for c in value)
            and any(c.isdigit() for c in value)
            and any(not c.isalnum() for c in value)
        ):
            return value


def new_username() -> str:
    first = secrets.choice(string.ascii_lowercase)
    return first + "".join(
        secrets.choice(string.ascii_lowercase + string.digits) for _ in range(11)
    )


def new_pin() -> str:
    while True:
        pin = "".join(secrets.choice(string.digits) for _ in range(PIN_LENGTH))
        if len(set(pin)) >= 4:
            return pin


def _acl_lines(addresses: set[str]) -> list[str]:
    lines = []
    nets = sorted(ipaddress.ip_address(a) for a in addresses)
    if any(n.version == 4 for n in nets):
        lines.append("deny=0.0.0.0/0.0.0.0")
    if any(n.version == 6 for n in nets):
        lines.append("deny=::/0")
    for net in nets:
        mask = "255.255.255.255" if net.version == 4 else "128"
        lines.append(f"permit={net}/{mask}")
    return lines


def _deny_first(section: Section, edits: EditSet) -> None:
    """A permit with no deny before it restricts nothing: put 'deny everything' first."""
    rules = [e for e in section.entries if e.key.lower() in ("permit", "deny")]
    first_permit = bool(rules) and rules[0].key.lower() == "permit" and rules[0] in section.own
    if first_permit and not any(r.key.lower() == "deny" for r in rules):
        edits.insert_after(rules[0].file, rules[0].line - 1, ["deny=0.0.0.0/0.0.0.0"])


def _weak(entry: Entry | None, names: list[str]) -> bool:
    return entry is None or bool(secret_findings(entry, "", names))


def plan_hardening(tree: Tree, registered: dict[str, set[str]] | None = None) -> Plan:
    """`registered` maps account (peer, endpoint or AOR) names to addresses seen registering."""
    plan = Plan(EditSet(tree))
    seen = registered or {}
    _harden_sip(tree, plan, seen)
    _harden_pjsip(tree, plan, seen)
    _harden_iax(tree, plan)
    _harden_services(tree, plan)
    plan.notes.extend(cut_default_paths(tree, plan.edits))
    plan.notes.extend(add_call_limits(tree, plan.edits))
    return plan


def _dialplan_files(tree: Tree) -> list[str]:
    config = tree.config("extensions.conf")
    return list(config.files) if config else []


def _harden_sip(tree: Tree, plan: Plan, seen: dict[str, set[str]]) -> None:
    config = tree.config("sip.conf")
    if config is None:
        return
    edits = plan.edits
    general = config.section("general")
    if general is None:
        edits.append(config.name, ["[general]", "allowguest=no", "alwaysauthreject=yes"])
    else:
        edits.set_option(general, "allowguest", "no")
        edits.set_option(general, "alwaysauthreject", "yes")
    files = _dialplan_files(tree)
    variable_dial = any(
        re.search(r"SIP/\$\{", line, re.IGNORECASE) for f in files for line in tree.files[f].lines
    )
    for peer in config.objects():
        if peer.name == "general" or peer.value("type").lower() not in ("peer", "friend", "user"):
            continue
        dynamic = peer.value("host").lower() == "dynamic"
        if not dynamic:
            continue
        insecure = peer.get("insecure")
        if insecure is not None and insecure.value.lower() not in ("no", ""):
            if insecure in peer.own:
                edits.comment_out(insecure.file, insecure.line)
            else:
                edits.insert_after(peer.file, peer.line, ["insecure=no"])
        limit = peer.get("call-limit")
        if limit is None or not limit.value.isdigit() or int(limit.value) > MAX_CALL_LIMIT:
            edits.set_option(peer, "call-limit", CALL_LIMIT)
        _deny_first(peer, edits)
        if not has_acl(peer) and seen.get(peer.name):
            edits.insert_after(peer.file, peer.line, _acl_lines(seen[peer.name]))
        extension = peer.name if NUMERIC.match(peer.name) else ""
        username = peer.name
        if extension and not variable_dial:
            username = new_username()
            for file, line in [(peer.file, peer.line), *peer.reopened]:  # `[2001](+)` too
                header = edits.text(file, line)
                edits.replace_line(file, line, header.replace(f"[{peer.name}]", f"[{username}]", 1))
            _rename_dials(tree, plan, files, peer.name, username)
            if not peer.value("callerid"):
                # Without it the opaque name would show as the caller ID number.
                edits.insert_after(peer.file, peer.line, [f"callerid=<{extension}>"])
        elif extension and variable_dial:
            plan.notes.append(
                f"sip.conf [{peer.name}]: numeric peer name kept; the dialplan dials chan_sip "
                "peers through variables (SIP/${...}), which a rename would break"
            )
        secret = peer.get("secret")
        weak = _weak(secret, [peer.name, extension])
        if weak or username != peer.name:
            value = new_secret() if weak or secret is None else secret.value
            if secret is not None and secret in peer.own:
                edits.set_value(secret, value)
            else:
                edits.insert_after(peer.file, peer.line, [f"secret={value}"])
            plan.credentials.append(Credential(config.name, peer.name, extension, username, value))


def _rename_dials(tree: Tree, plan: Plan, files: list[str], old: str, new: str) -> None:
    pattern = re.compile(rf"(SIP/){re.escape(old)}(?![\w-])", re.IGNORECASE)
    for file in files:
        for number in range(1, len(tree.files[file].lines) + 1):
            text = plan.edits.text(file, number)
            if pattern.search(text) and not text.lstrip().startswith(";"):
                plan.edits.replace_line(file, number, pattern.sub(rf"\g<1>{new}", text))


def _harden_pjsip(tree: Tree, plan: Plan, seen: dict[str, set[str]]) -> None:
    config = tree.config("pjsip.conf")
    if config is None:
        return
    edits = plan.edits
    identified = identified_endpoints(config)
    outbound = outbound_only_auths(config)
    auths = {a.name: a for a in config.by_type("auth")}
    for ep in config.by_type("endpoint"):
        if ep.name == "anonymous":
            edits.comment_section(ep)
            continue
        if ep.name in identified:
            continue
        addresses = set(seen.get(ep.name, set()))
        for aor in split_list(ep.value("aors")):
            addresses |= seen.get(aor, set())
        if not has_acl(ep, ("acl", "contact_acl", "contact_permit", "contact_deny")) and addresses:
            edits.insert_after(ep.file, ep.line, _acl_lines(addresses))
        names = [n for n in split_list(ep.value("auth")) if n in auths and n not in outbound]
        extension = ep.name if NUMERIC.match(ep.name) else ""
        if not ep.value("auth"):
            user, secret, auth_name = new_username(), new_secret(), f"{ep.name}-auth"
            # Appended to pjsip.conf itself: the end of an included file may be mid-section.
            edits.append(
                config.name,
                [
                    "",
                    f"[{auth_name}]",
                    "type=auth",
                    "auth_type=userpass",
                    f"username={user}",
                    f"password={secret}",
                ],
            )
            edits.insert_after(ep.file, ep.line, [f"auth={auth_name}", "identify_by=auth_username"])
            plan.credentials.append(Credential(config.name, ep.name, extension, user, secret))
            continue
        for name in names:
            _harden_auth(plan, config.name, ep, auths[name], extension)


def _harden_auth(plan: Plan, file: str, ep: Section, auth: Section, extension: str) -> None:
    edits = plan.edits
    username = auth.get("username")
    user = username.value if username else ep.name
    if (
        NUMERIC.match(user)
        or user == extension
        or (
            NUMERIC.match(ep.name)
            and "username" in split_list(ep.value("identify_by", "username,ip").lower())
        )
    ):
        user = new_username()
        edits.set_option(auth, "username", user)
        edits.set_option(ep, "identify_by", "auth_username")
    password = auth.get("password")
    value = password.value if password else ""
    if _weak(password, [auth.name, user, ep.name]):
        value = new_secret()
        edits.set_option(auth, "password", value)
    elif user == (username.value if username else ep.name):
        return  # nothing changed: no need to re-provision this phone
    plan.credentials.append(Credential(file, ep.name, extension, user, value))


def _harden_iax(tree: Tree, plan: Plan) -> None:
    config = tree.config("iax.conf")
    if config is None:
        return
    if iax_guest_context(tree) is not None:
        guest = config.section("guest")
        if guest is not None:
            plan.edits.comment_section(guest)
    for section in config.objects():
        auth = section.get("auth")
        if auth is not None and "plaintext" in auth.value.lower() and auth in section.own:
            plan.edits.set_value(auth, "md5")
        if section.name in ("general", "guest"):
            continue
        _deny_first(section, plan.edits)
        dynamic = section.value("host").lower() == "dynamic"
        secret = section.get("secret")
        if (
            (dynamic or section.value("type").lower() == "user")
            and secret is not None
            and _weak(secret, [section.name])
        ):
            value = new_secret()
            if secret in section.own:
                plan.edits.set_value(secret, value)
            else:
                plan.edits.insert_after(section.file, section.line, [f"secret={value}"])
            plan.credentials.append(Credential(config.name, section.name, "", section.name, value))


def _harden_services(tree: Tree, plan: Plan) -> None:
    edits = plan.edits
    manager = tree.config("manager.conf")
    general = manager.section("general") if manager else None
    if manager is not None and general is not None:
        if is_true(general.value("enabled")) and not is_loopback(general.value("bindaddr")):
            edits.set_option(general, "bindaddr", "127.0.0.1")
        for user in manager.objects():
            if user.name == "general":
                continue
            _close_open_permit(user, plan)
            _deny_first(user, edits)
            if not has_acl(user):
                edits.insert_after(
                    user.file,
                    user.line,
                    ["deny=0.0.0.0/0.0.0.0", f"permit={LOOPBACK_PERMIT}"],
                )
            secret = user.get("secret")
            if secret is not None and _weak(secret, [user.name]) and secret in user.own:
                value = new_secret()
                edits.set_value(secret, value)
                plan.credentials.append(Credential(manager.name, user.name, "", user.name, value))
    http = tree.config("http.conf")
    http_general = http.section("general") if http else None
    if http_general is not None and http_exposed(tree):
        edits.set_option(http_general, "bindaddr", "127.0.0.1")
    _harden_logger(tree, plan)
    rtp = tree.config("rtp.conf")
    rtp_general = rtp.section("general") if rtp else None
    if rtp_general is not None and any(f.severity >= Severity.MEDIUM for f in check_rtp(tree)):
        edits.set_option(rtp_general, "rtpstart", "10000")
        edits.set_option(rtp_general, "rtpend", "20000")
    users = tree.config("users.conf")
    for user in users.objects() if users else []:
        secret = user.get("secret")
        if user.name != "general" and secret in user.own and _weak(secret, [user.name]):
            assert secret is not None
            value = new_secret()
            edits.set_value(secret, value)
            extension = user.name if NUMERIC.match(user.name) else ""
            plan.credentials.append(
                Credential("users.conf", user.name, extension, user.name, value)
            )
    voicemail = tree.config("voicemail.conf")
    for context in voicemail.objects() if voicemail else []:
        if context.name in ("general", "zonemessages"):
            continue
        for entry in context.own:
            if entry.op != "=>" or not entry.key.isdigit():
                continue
            pin, sep, rest = entry.value.partition(",")
            if weak_pin(pin.strip().lstrip("-"), entry.key):
                value = new_pin()
                edits.set_value(entry, value + sep + rest)
                plan.credentials.append(
                    Credential(
                        "voicemail.conf", context.name, entry.key, f"mailbox {entry.key}", value
                    )
                )


def _close_open_permit(user: Section, plan: Plan) -> None:
    """`permit=0.0.0.0/0.0.0.0` admits everyone whatever denies precede it: loopback instead."""
    everyone = open_permit(user)
    if everyone is None:
        return
    if everyone in user.own:
        plan.edits.set_value(everyone, LOOPBACK_PERMIT)
    else:  # inherited from a template: a later rule in the user itself overrides it
        plan.edits.insert_after(
            user.file, user.line, ["deny=0.0.0.0/0.0.0.0", f"permit={LOOPBACK_PERMIT}"]
        )
        plan.notes.append(
            f"manager.conf [{user.name}]: its template permits every address "
            f"({everyone.file}:{everyone.line}); overridden in [{user.name}], fix the template too"
        )


def _harden_logger(tree: Tree, plan: Plan) -> None:
    if not check_logger(tree):
        return
    logger = tree.config("logger.conf")
    if logger is None:
        plan.edits.create(
            "logger.conf",
            "; written by sipguard harden\n[general]\n\n[logfiles]\n"
            "messages => notice,warning,error,security\nsecurity => security\n",
        )
        return
    logfiles = logger.section("logfiles")
    messages = logfiles.get("messages") if logfiles is not None else None
    if messages is not None and logfiles is not None and messages in logfiles.own:
        # what the README recommends: the security events beside the failures they explain
        plan.edits.set_value(messages, messages.value.rstrip(", ") + ",security")
    if logfiles is None:
        plan.edits.append(logger.name, ["[logfiles]", "security => security"])
    else:
        plan.edits.insert_after(logfiles.file, logfiles.line, ["security => security"])
