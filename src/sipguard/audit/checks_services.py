"""Checks for AMI (manager.conf, http.conf), rtp.conf, logger.conf, users.conf, voicemail.conf."""

from __future__ import annotations

import itertools

from sipguard.audit.common import (
    acl_order,
    extension_of,
    has_acl,
    is_loopback,
    is_true,
    open_permit,
    secret_findings,
    username_findings,
)
from sipguard.audit.model import Finding, Severity, Tree

DANGEROUS_WRITE = ("system", "command", "originate", "all")
MIN_PIN = 6
RTP_DEFAULT = "rtpstart=10000 and rtpend=20000"


def http_exposed(tree: Tree) -> bool:
    config = tree.config("http.conf")
    general = config.section("general") if config else None
    if general is None or not is_true(general.value("enabled")):
        return False
    bind = general.value("bindaddr")
    return bool(bind) and not is_loopback(bind)


def check_manager(tree: Tree) -> list[Finding]:
    config = tree.config("manager.conf")
    if config is None:
        return []
    out: list[Finding] = []
    general = config.section("general")
    enabled = general.get("enabled") if general else None
    if enabled is not None and is_true(enabled.value) and general is not None:
        bind = general.get("bindaddr")
        if bind is None or not is_loopback(bind.value):
            where = bind or enabled
            shown = bind.value if bind else "0.0.0.0 (default)"
            out.append(
                Finding(
                    "AMI-BIND",
                    Severity.HIGH,
                    where.file,
                    where.line,
                    f"AMI is enabled and listens on {shown}, beyond loopback",
                    "Set bindaddr=127.0.0.1 (use an SSH tunnel or VPN for remote tools).",
                )
            )
    web = general.get("webenabled") if general else None
    if web is not None and is_true(web.value) and http_exposed(tree):
        out.append(
            Finding(
                "AMI-HTTP",
                Severity.HIGH,
                web.file,
                web.line,
                "AMI over HTTP is enabled and http.conf listens beyond loopback",
                "Set webenabled=no, or bind http.conf to 127.0.0.1.",
            )
        )
    for user in config.objects():
        if user.name == "general":
            continue
        what = f"manager.conf user [{user.name}]"
        if not has_acl(user):
            out.append(
                Finding(
                    "AMI-NOACL",
                    Severity.MEDIUM,
                    user.file,
                    user.line,
                    f"{what} has no permit/deny: it may log in from any address",
                    "Add deny=0.0.0.0/0.0.0.0 and permit=127.0.0.1/255.255.255.255.",
                )
            )
        everyone = open_permit(user)
        if everyone is not None:
            out.append(
                Finding(
                    "AMI-ACL-OPEN",
                    Severity.HIGH,
                    everyone.file,
                    everyone.line,
                    f"{what} has permit={everyone.value}: the ACL admits every address",
                    "Remove it; permit only 127.0.0.1/255.255.255.255 and the hosts that need AMI.",
                )
            )
        out.extend(acl_order(user, "AMI", "manager.conf user"))
        secret = user.get("secret")
        if secret is not None:
            out.extend(secret_findings(secret, f"{what} secret", [user.name]))
        write = user.get("write")
        if write is not None:
            classes = {c.strip().lower() for c in write.value.split(",")}
            bad = sorted(classes.intersection(DANGEROUS_WRITE))
            if bad:
                out.append(
                    Finding(
                        "AMI-WRITE",
                        Severity.MEDIUM,
                        write.file,
                        write.line,
                        f"{what} has write class {', '.join(bad)}: a leaked AMI login can run "
                        "shell commands or place calls",
                        "Grant only the write classes the tool needs (e.g. call,reporting).",
                    )
                )
    return out


def check_http(tree: Tree) -> list[Finding]:
    config = tree.config("http.conf")
    general = config.section("general") if config else None
    if general is None or not http_exposed(tree):
        return []
    bind = general.get("bindaddr")
    assert bind is not None  # http_exposed() needs a bindaddr
    tls = is_true(general.value("tlsenable"))
    return [
        Finding(
            "HTTP-BIND",
            Severity.MEDIUM,
            bind.file,
            bind.line,
            f"the Asterisk HTTP server listens on {bind.value}" + ("" if tls else " without TLS"),
            "Bind it to 127.0.0.1 unless phones or WebRTC need it; enable TLS if they do.",
        )
    ]


def check_rtp(tree: Tree) -> list[Finding]:
    config = tree.config("rtp.conf")
    general = config.section("general") if config else None
    start = general.get("rtpstart") if general else None
    end = general.get("rtpend") if general else None
    if start is None or end is None:
        file, line = (general.file, general.line) if general else ("rtp.conf", 1)
        return [
            Finding(
                "RTP-RANGE",
                Severity.INFO,
                file,
                line,
                "rtp.conf sets no explicit RTP port range (Asterisk falls back to 5000-31000)",
                f"Set {RTP_DEFAULT} and open exactly that range in the firewall.",
            )
        ]
    if not (start.value.isdigit() and end.value.isdigit()):
        return [
            Finding(
                "RTP-RANGE",
                Severity.MEDIUM,
                start.file,
                start.line,
                "rtpstart/rtpend are not numbers",
                f"Set {RTP_DEFAULT}.",
            )
        ]
    low, high = int(start.value), int(end.value)
    if low < 1024 or high > 65535 or low >= high:
        return [
            Finding(
                "RTP-RANGE",
                Severity.MEDIUM,
                start.file,
                start.line,
                f"RTP range {low}-{high} is invalid or reaches privileged ports",
                f"Set {RTP_DEFAULT}.",
            )
        ]
    return []


def check_logger(tree: Tree) -> list[Finding]:
    config = tree.config("logger.conf")
    fix = "Add 'security => security' under [logfiles] (sipguard reads it for attacker addresses)."
    if config is None:
        return [
            Finding(
                "LOG-SECURITY",
                Severity.MEDIUM,
                "logger.conf",
                1,
                "logger.conf is missing, so no security log is written",
                fix,
            )
        ]
    logfiles = config.section("logfiles")
    if logfiles is not None:
        for entry in logfiles.entries:
            levels = {lv.strip().lower() for lv in entry.value.split(",")}
            if "security" in levels or "*" in levels:
                return []
    file, line = (logfiles.file, logfiles.line) if logfiles else ("logger.conf", 1)
    return [
        Finding(
            "LOG-SECURITY",
            Severity.MEDIUM,
            file,
            line,
            "no log file receives the 'security' level: failed logins from chan_sip INVITEs "
            "carry no address without it",
            fix,
        )
    ]


def check_users(tree: Tree) -> list[Finding]:
    config = tree.config("users.conf")
    if config is None:
        return []
    out: list[Finding] = []
    for user in config.objects():
        if user.name == "general":
            continue
        what = f"users.conf [{user.name}]"
        secret = user.get("secret")
        if secret is not None:
            out.extend(secret_findings(secret, f"{what} secret", [user.name]))
        if is_true(user.value("hassip")) or is_true(user.value("hasiax")):
            ext = extension_of(user)
            out.extend(username_findings(user.file, user.line, user.name, ext, what))
    return out


def weak_pin(pin: str, mailbox: str) -> str:
    if len(pin) < MIN_PIN:
        return f"has {len(pin)} digits (< {MIN_PIN})"
    if pin == mailbox or (mailbox and mailbox in pin):
        return "contains the mailbox number"
    if len(set(pin)) == 1:
        return "repeats one digit"
    if pin.isdigit():
        steps = {int(b) - int(a) for a, b in itertools.pairwise(pin)}
        if steps in ({1}, {-1}):
            return "is a digit sequence"
    return ""


def check_voicemail(tree: Tree) -> list[Finding]:
    config = tree.config("voicemail.conf")
    if config is None:
        return []
    out: list[Finding] = []
    for context in config.objects():
        if context.name in ("general", "zonemessages"):
            continue
        for entry in context.entries:
            if entry.op != "=>" and not entry.key.isdigit():
                continue
            pin = entry.value.split(",", 1)[0].strip().lstrip("-")
            problem = weak_pin(pin, entry.key)
            if problem:
                out.append(
                    Finding(
                        "VM-PIN",
                        Severity.MEDIUM,
                        entry.file,
                        entry.line,
                        f"voicemail.conf mailbox {entry.key}@{context.name}: the PIN {problem}; "
                        "guessed PINs enable callback and outdial fraud",
                        "Use random PINs of 6+ digits (sipguard harden does this).",
                    )
                )
    return out
