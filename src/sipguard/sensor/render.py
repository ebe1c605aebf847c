"""Kernel-only mode: `sipguard firewall render [--apply]` for hosts that cannot run the sensor.

Two pieces, because nftables has no string match:
- an nftables base policy (table `inet sipguard_base`): who may reach which Asterisk port.
  Trunks and known networks reach SIP, IAX2, AMI and RTP; everyone else reaches SIP (filtered by
  the domain rules below) and the RTP range; IAX2 and AMI are closed to them.
- iptables string-match rules (chain `sipguard-domain`, IPv4 and IPv6): a UDP REGISTER, INVITE
  or OPTIONS to a SIP port that does not carry "@<secret domain>" is dropped.
Trunks are allowed by source address, never by conntrack ESTABLISHED state: a UDP conntrack
entry expires after 30-180 s of silence, so the next INVITE from a quiet trunk would be "new"
and hit the domain filter (trunks usually address the PBX by IP). Known limits compared with the
sensor: the string may appear anywhere in the packet, TCP and TLS are not inspected, and there
are no rate limits or scanner signatures.
"""

from __future__ import annotations

import argparse
import configparser
import sys
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import MAIN_CONFIG_HELP, main_file

__all__ = ["BaseRules", "read_rtp_range", "register_render", "render_iptables", "render_nft"]

BASE_TABLE = "sipguard_base"
DOMAIN_CHAIN = "sipguard-domain"
IAX2_PORT, AMI_PORT = 4569, 5038
METHODS = ("REGISTER", "INVITE", "OPTIONS")

Network = IPv4Network | IPv6Network


@dataclass(frozen=True)
class BaseRules:
    domains: tuple[str, ...]
    trunks: tuple[Network, ...] = ()
    known: tuple[Network, ...] = ()
    sip_ports: tuple[int, ...] = (5060,)
    tls_ports: tuple[int, ...] = (5061,)
    rtp: tuple[int, int] = (10000, 20000)


def read_rtp_range(asterisk_dir: str) -> tuple[int, int]:
    """rtpstart/rtpend from rtp.conf's [general] (Asterisk's defaults when absent)."""
    path = Path(asterisk_dir) / "rtp.conf"
    start, end = 10000, 20000
    if not path.exists():
        return start, end
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=(";",))
    try:
        # Asterisk allows "key => value" and "key = value"
        text = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
        parser.read_string(text.replace("=>", "="))
    except (OSError, configparser.Error) as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc}") from exc
    if parser.has_section("general"):
        for key in ("rtpstart", "rtpend"):
            raw = parser.get("general", key, fallback=None)
            if raw is None:
                continue
            value = raw.split(";", 1)[0].strip()
            if not value.isdigit() or not 1 <= int(value) <= 65535:
                raise ConfigError(str(path), f"general.{key}", f"{value!r} is not a port number")
            if key == "rtpstart":
                start = int(value)
            else:
                end = int(value)
    if start > end:
        raise ConfigError(str(path), "general.rtpend", f"{end} is below rtpstart {start}")
    return start, end


def _set(items: list[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def render_nft(rules: BaseRules) -> str:
    sip = sorted({*rules.sip_ports, *rules.tls_ports})
    sip_ports = _set([str(p) for p in sip])
    rtp = f"{rules.rtp[0]}-{rules.rtp[1]}"
    lines = [
        "# sipguard kernel-only base policy: rendered by `sipguard firewall render`",
        f"table inet {BASE_TABLE}",
        f"delete table inet {BASE_TABLE}",
        f"table inet {BASE_TABLE} {{",
    ]
    for name, nets in (("trunks", rules.trunks), ("known", rules.known)):
        for version, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            elems = [str(n) for n in nets if n.version == version]
            lines.append(f"\tset {name}{version} {{")
            lines.append(f"\t\ttype {kind}; flags interval;")
            if elems:
                lines.append(f"\t\telements = {_set(elems)}")
            lines.append("\t}")
    lines += [
        "\tchain input {",
        "\t\ttype filter hook input priority filter - 10; policy accept;",
        '\t\tiif "lo" accept',
        "\t\t# trunks and known networks by address, never by conntrack state (UDP entries",
        "\t\t# expire between calls): they reach every Asterisk port",
    ]
    all_ports = _set([*map(str, sip), str(IAX2_PORT), str(AMI_PORT), rtp])
    for name in ("trunks", "known"):
        lines.append(
            f"\t\tip saddr @{name}4 meta l4proto {{ udp, tcp }} th dport {all_ports} accept"
        )
        lines.append(
            f"\t\tip6 saddr @{name}6 meta l4proto {{ udp, tcp }} th dport {all_ports} accept"
        )
    lines += [
        "\t\t# everyone else: SIP (the domain rules filter it) and the RTP range",
        f"\t\tmeta l4proto {{ udp, tcp }} th dport {sip_ports} accept",
        f"\t\tudp dport {rtp} accept",
        "\t\t# IAX2 and AMI only for trunks and known networks",
        f"\t\tudp dport {IAX2_PORT} counter drop",
        f"\t\ttcp dport {AMI_PORT} counter drop",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def render_iptables(rules: BaseRules, version: int) -> str:
    """iptables-restore input (apply with --noflush) for one address family."""
    payload = 28 if version == 4 else 48  # IP + UDP header: where the request line starts
    lines = ["*filter", f":{DOMAIN_CHAIN} - [0:0]", f"-F {DOMAIN_CHAIN}"]
    for net in (*rules.trunks, *rules.known):
        if net.version == version:
            lines.append(f"-A {DOMAIN_CHAIN} -s {net} -j RETURN")
    check = f"{DOMAIN_CHAIN}-check"
    lines[1:1] = [f":{check} - [0:0]"]
    lines.append(f"-F {check}")
    for method in METHODS:
        lines.append(
            f"-A {DOMAIN_CHAIN} -m string --algo bm --from {payload} --to {payload + 24} "
            f'--string "{method} " -j {check}'
        )
    for domain in rules.domains:
        lines.append(f'-A {check} -m string --algo bm --icase --string "@{domain}" -j RETURN')
    if rules.domains:
        lines.append(f"-A {check} -j DROP")
    ports = ",".join(str(p) for p in rules.sip_ports)
    lines.append(f"-I INPUT 1 -p udp -m multiport --dports {ports} -j {DOMAIN_CHAIN}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def apply(rules: BaseRules, netns: str | None = None) -> None:
    """Load both pieces: the nft table in one transaction, then iptables-restore --noflush."""
    from sipguard.actions.base import run_tool

    run_tool(["nft", "-f", "-"], netns, stdin=render_nft(rules))
    _remove_jumps(rules, netns)
    run_tool(["iptables-restore", "-w", "--noflush"], netns, stdin=render_iptables(rules, 4))
    run_tool(["ip6tables-restore", "-w", "--noflush"], netns, stdin=render_iptables(rules, 6))


def _remove_jumps(rules: BaseRules, netns: str | None) -> None:
    from sipguard.actions.base import FirewallError, run_tool

    ports = ",".join(str(p) for p in rules.sip_ports)
    for tool in ("iptables", "ip6tables"):
        jump = [
            "-D",
            "INPUT",
            "-p",
            "udp",
            "-m",
            "multiport",
            "--dports",
            ports,
            "-j",
            DOMAIN_CHAIN,
        ]
        for _ in range(8):  # applying twice must not stack jumps
            try:
                run_tool([tool, "-w", *jump], netns)
            except FirewallError:
                break


def _networks(values: list[str], file: str, key: str) -> tuple[Network, ...]:
    out = []
    for text in values:
        try:
            out.append(ip_network(text.strip(), strict=False))
        except ValueError:
            raise ConfigError(file, key, f"{text!r} is not an address or CIDR network") from None
    return tuple(out)


def register_render(firewall_subparsers: Any) -> None:
    p = firewall_subparsers.add_parser(
        "render", help="write (or --apply) kernel-only rules: nftables base policy + domain match"
    )
    p.add_argument(
        "--config", metavar="PATH", help=MAIN_CONFIG_HELP + "; [sensor] domains, trusted"
    )
    p.add_argument("--domain", action="append", default=[], help="secret SIP domain")
    p.add_argument("--trusted", action="append", default=[], help="trunk address or CIDR")
    p.add_argument("--known", action="append", default=[], help="known network (phones' LAN)")
    p.add_argument("--asterisk-dir", default="/etc/asterisk", help="where rtp.conf lives")
    p.add_argument("--out", metavar="DIR", help="write sipguard-base.nft, sipguard-domain.v4/.v6")
    p.add_argument("--apply", action="store_true", help="load the rules into the kernel now")
    p.add_argument("--netns", default=None, help="apply inside this named network namespace")
    p.set_defaults(func=cmd_render)


def build_rules(args: argparse.Namespace) -> BaseRules:
    from sipguard.data import scanner_signatures
    from sipguard.sensor.config import parse_sensor_config

    table: dict[str, Any] = {}
    file = str(main_file(args.config)) if args.config else "command line"
    if args.config:
        import tomllib

        try:
            with open(file, "rb") as fh:
                section = tomllib.load(fh).get("sensor", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(args.config, "", str(exc)) from exc
        if not isinstance(section, dict):
            raise ConfigError(args.config, "sensor", "must be a table")
        table.update(section)
    if args.domain:
        table["domains"] = args.domain
    if args.trusted:
        table["trusted"] = [*table.get("trusted", []), *args.trusted]
    cfg = parse_sensor_config(table, file, scanner_signatures())
    if not cfg.domains:
        raise ConfigError(file, "sensor.domains", "at least one secret domain is required")
    return BaseRules(
        domains=tuple(sorted(cfg.domains)),
        trunks=cfg.trusted,
        known=_networks(args.known, "command line", "--known"),
        sip_ports=cfg.sip_ports,
        tls_ports=cfg.tls_ports,
        rtp=read_rtp_range(args.asterisk_dir),
    )


def cmd_render(args: argparse.Namespace) -> int:
    from sipguard.actions.base import FirewallError
    from sipguard.cli.main import CliError

    try:
        rules = build_rules(args)
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    texts = {
        "sipguard-base.nft": render_nft(rules),
        "sipguard-domain.v4": render_iptables(rules, 4),
        "sipguard-domain.v6": render_iptables(rules, 6),
    }
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {', '.join(texts)} to {out}", file=sys.stderr)
    elif not args.apply:
        for name, text in texts.items():
            sys.stdout.write(f"# ---- {name}\n{text}")
    if args.apply:
        try:
            apply(rules, args.netns)
        except FirewallError as exc:
            raise CliError(f"firewall render --apply: {exc}") from exc
        print(
            "applied: nft table inet sipguard_base, iptables chain sipguard-domain", file=sys.stderr
        )
    return 0
