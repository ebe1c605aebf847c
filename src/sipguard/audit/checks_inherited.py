"""What `[general]` gives to everyone, and ports the RTP range takes from other services.

A weak value in one object is one weakness; the same value in `[general]` (or in a default
every object falls back to) is a weakness in every object that does not override it. These
checks report it once, at the line where it is written, with the objects that inherit it.
Templates need no check of their own: the parser folds them into each object, so the
per-object checks report a template's line already.
"""

from __future__ import annotations

from sipguard.audit.checks_services import weak_pin
from sipguard.audit.checks_sip import PEER_TYPES
from sipguard.audit.common import is_true, port_of
from sipguard.audit.model import Config, Finding, Section, Severity, Tree

SHOWN_NAMES = 5
#: (service, port, file, line): where each service's port comes from
Port = tuple[str, int, str, int]


def _heirs(objects: list[Section], key: str) -> list[str]:
    """Objects that do not set `key` themselves (nor through a template)."""
    return [s.name for s in objects if s.get(key) is None]


def _names(names: list[str]) -> str:
    more = f", +{len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
    return ", ".join(names[:SHOWN_NAMES]) + more


def check_general_defaults(tree: Tree) -> list[Finding]:
    out: list[Finding] = []
    sip = tree.config("sip.conf")
    general = sip.section("general") if sip else None
    insecure = general.get("insecure") if general else None
    if sip is not None and insecure is not None:
        value = insecure.value.lower()
        peers = [
            p
            for p in sip.objects()
            if p.name != "general" and p.value("type").lower() in PEER_TYPES
        ]
        heirs = _heirs(peers, "insecure")
        if heirs and ("invite" in value or value == "very"):
            out.append(
                Finding(
                    "SIP-GENERAL-INSECURE",
                    Severity.HIGH,
                    insecure.file,
                    insecure.line,
                    f"sip.conf [general] sets insecure={insecure.value}: every peer without its "
                    f"own insecure= ({len(heirs)} of {len(peers)}: {_names(heirs)}) accepts "
                    "INVITEs without a password",
                    "Remove insecure= from [general]; set insecure=port,invite only on the "
                    "provider trunks that need it.",
                )
            )
    out.extend(_users_general(tree.config("users.conf")))
    return out


def _users_general(users: Config | None) -> list[Finding]:
    """users.conf [general] values are every user's defaults: one PIN or password for all."""
    general = users.section("general") if users else None
    if users is None or general is None:
        return []
    people = [u for u in users.objects() if u.name != "general"]
    out: list[Finding] = []
    for key, fid, severity, what in (
        ("vmsecret", "USERS-GENERAL-PIN", Severity.HIGH, "voicemail PIN"),
        ("secret", "USERS-GENERAL-SECRET", Severity.CRITICAL, "SIP/IAX password"),
    ):
        entry = general.get(key)
        heirs = _heirs(people, key)
        if entry is None or not entry.value.strip() or not heirs:
            continue
        weak = weak_pin(entry.value.strip(), "") if key == "vmsecret" else ""
        out.append(
            Finding(
                fid,
                severity,
                entry.file,
                entry.line,
                f"users.conf [general] sets {key}: every user without its own ({len(heirs)} of "
                f"{len(people)}: {_names(heirs)}) has the same {what}"
                + (f", and it {weak}" if weak else "")
                + "; whoever learns one has them all",
                f"Remove {key} from [general] and give each user its own random {what} "
                "(sipguard harden does this for secrets).",
            )
        )
    return out


def _port(
    section: Section | None, keys: tuple[str, ...], default: int, file: str
) -> tuple[int, str, int]:
    """The port the first of `keys` sets (an address:port or a bare port), else the default,
    placed at the section (or the file) that leaves it to the default."""
    for key in keys:
        entry = section.get(key) if section else None
        if entry is None:
            continue
        value = entry.value.strip()
        port = int(value) if value.isdigit() and 0 < int(value) < 65536 else port_of(value)
        if port is not None:
            return port, entry.file, entry.line
    if section is not None:
        return default, section.file, section.line
    return default, file, 1


def service_ports(tree: Tree) -> list[Port]:
    """The ports Asterisk's signalling and management services listen on, per configuration."""
    out: list[Port] = []
    sip = tree.config("sip.conf")
    if sip is not None:
        general = sip.section("general")
        udp = _port(general, ("udpbindaddr", "bindport"), 5060, "sip.conf")
        out.append(("chan_sip", *udp))
        if general is not None and is_true(general.value("tcpenable")):
            out.append(("chan_sip TCP", *_port(general, ("tcpbindaddr",), udp[0], "sip.conf")))
        if general is not None and is_true(general.value("tlsenable")):
            out.append(("chan_sip TLS", *_port(general, ("tlsbindaddr",), 5061, "sip.conf")))
    pjsip = tree.config("pjsip.conf")
    for transport in pjsip.by_type("transport") if pjsip else []:
        protocol = transport.value("protocol", "udp").lower()
        if protocol in ("ws", "wss"):
            continue  # WebSockets ride on the HTTP server's port
        default = 5061 if protocol == "tls" else 5060
        where = _port(transport, ("bind",), default, "pjsip.conf")
        out.append((f"PJSIP transport [{transport.name}]", *where))
    iax = tree.config("iax.conf")
    if iax is not None:
        where = _port(iax.section("general"), ("bindaddr", "bindport"), 4569, "iax.conf")
        out.append(("IAX2", *where))
    for name, service, keys, default, tls in (
        ("manager.conf", "AMI", ("port",), 5038, 5039),
        ("http.conf", "HTTP/ARI", ("bindport",), 8088, 8089),
    ):
        config = tree.config(name)
        general = config.section("general") if config else None
        if general is None or not is_true(general.value("enabled")):
            continue
        out.append((service, *_port(general, keys, default, name)))
        if is_true(general.value("tlsenable")):
            tls_keys = ("tlsbindport", "tlsbindaddr") if service == "AMI" else ("tlsbindaddr",)
            out.append((f"{service} TLS", *_port(general, tls_keys, tls, name)))
    return out


def check_rtp_overlap(tree: Tree) -> list[Finding]:
    """An RTP range over a service port: opening the range (as media needs) opens the service
    to everyone, and RTP may take the port the service needs."""
    config = tree.config("rtp.conf")
    general = config.section("general") if config else None
    start = general.get("rtpstart") if general else None
    end = general.get("rtpend") if general else None
    if start is None or end is None or not (start.value.isdigit() and end.value.isdigit()):
        return []  # check_rtp reports a missing or broken range
    low, high = int(start.value), int(end.value)
    if low < 1024 or high > 65535 or low >= high:
        return []  # check_rtp reports an invalid range, and its fix moves it anyway
    inside = [p for p in service_ports(tree) if low <= p[1] <= high]
    if not inside:
        return []
    listed = "; ".join(f"{svc} port {port} ({file}:{line})" for svc, port, file, line in inside)
    return [
        Finding(
            "RTP-OVERLAP",
            Severity.HIGH,
            start.file,
            start.line,
            f"the RTP range {low}-{high} contains {listed}: the firewall must open the whole "
            "range for media, so these services are open to everyone, and RTP may take their "
            "ports",
            "Move the RTP range clear of the service ports (rtpstart=10000, rtpend=20000).",
        )
    ]
