"""Services beside SIP a stranger should not reach: AMI, the HTTP/ARI server, IAX2, and TLS."""

from __future__ import annotations

import struct

from sipguard.probe.context import ProbeContext
from sipguard.probe.model import Evidence, Severity
from sipguard.probe.netio import Net

__all__ = ["check_ami", "check_http", "check_iax", "check_tls", "iax_poke", "is_iax_pong"]

TIMEOUT = 2.0


def _text(data: bytes | None) -> str:
    if data is None:
        return "(no connection)"
    return data.decode("utf-8", "replace") or "(connected, nothing sent)"


def check_ami(ctx: ProbeContext, net: Net) -> None:
    """Connect to AMI and read the banner; send nothing (a stranger needs no more to know)."""
    host, port = ctx.target.host, ctx.options.ami_port
    ctx.ledger.admit("ami/tcp", f"{host}:{port}", b"")
    banner = net.tcp(host, port, None, TIMEOUT)
    if banner is not None and banner.startswith(b"Asterisk Call Manager/"):
        ctx.add(
            "PROBE-AMI-OPEN",
            Severity.HIGH,
            f"AMI answers a stranger on port {port}: {_text(banner).splitlines()[0]}",
            "Bind AMI to 127.0.0.1 (manager.conf bindaddr) and use deny/permit per user.",
            [Evidence(f"(TCP connect to {host}:{port})", _text(banner))],
        )
    else:
        ctx.note("ami", "ok", f"port {port}: {_text(banner)[:60]}")


HTTP_PATHS = ("/httpstatus", "/ari/asterisk/info")


def check_http(ctx: ProbeContext, net: Net) -> None:
    """The Asterisk HTTP server: any answer shows it to strangers; its status page and ARI
    (200, or 401 asking for a password) show more."""
    host, port = ctx.target.host, ctx.options.http_port
    evidence: list[Evidence] = []
    seen: list[str] = []
    for path in HTTP_PATHS:
        request = (
            f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: sipguard-probe\r\n\r\n"
        ).encode()
        ctx.ledger.admit("http/tcp", f"{host}:{port}", request)
        answer = net.tcp(host, port, request, TIMEOUT)
        if answer is None:
            break
        status = answer.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        if status.startswith("HTTP/"):
            seen.append(f"{path}: {status}")
            evidence.append(Evidence(request.decode(), _text(answer)[:2048]))
    if not seen:
        ctx.note("http", "ok", f"port {port}: no HTTP answer")
        return
    pages = any(" 200" in s or " 401" in s for s in seen)
    ctx.add(
        "PROBE-HTTP-OPEN",
        Severity.MEDIUM if pages else Severity.LOW,
        f"the Asterisk HTTP server answers a stranger on port {port}: {'; '.join(seen)}",
        "Bind http.conf to 127.0.0.1 (or disable it) and put ARI behind a proxy with TLS.",
        evidence,
    )


# RFC 5456 8.1: full frame = F|source call number (15 bits), R|destination call (15),
# timestamp (32), OSeqno (8), ISeqno (8), frame type (8: 6 = IAX control), C|subclass (7)
IAX_CONTROL = 6
IAX_POKE = 0x1E
IAX_PONG = 0x03


def iax_poke(call: int = 1) -> bytes:
    return struct.pack("!HHIBBBB", 0x8000 | call, 0, 0, 0, 0, IAX_CONTROL, IAX_POKE)


def is_iax_pong(data: bytes | None) -> bool:
    if data is None or len(data) < 12:
        return False
    return data[10] == IAX_CONTROL and data[11] == IAX_PONG and bool(data[0] & 0x80)


def check_iax(ctx: ProbeContext, net: Net) -> None:
    host, port = ctx.target.host, ctx.options.iax_port
    poke = iax_poke()
    ctx.ledger.admit("iax2/udp", f"{host}:{port}", poke)
    answer = net.udp(host, port, poke, TIMEOUT)
    if is_iax_pong(answer):
        assert answer is not None
        ctx.add(
            "PROBE-IAX-OPEN",
            Severity.LOW,
            f"IAX2 answers a POKE from a stranger on port {port} (PONG)",
            "Unload chan_iax2 if unused; otherwise limit it to known peers by firewall or ACL.",
            [Evidence("hex:" + poke.hex(), "hex:" + answer.hex())],
        )
    else:
        ctx.note("iax2", "ok", f"port {port}: no PONG")


def check_tls(ctx: ProbeContext, net: Net) -> None:
    port = ctx.options.tls_port
    if port is None:
        ctx.note("tls", "skipped", "no TLS port (use --tls-port or --transport tls)")
        return
    host = ctx.target.host
    name = ctx.options.domain or host

    def admit() -> None:
        ctx.ledger.admit("tls/tcp", f"{host}:{port}", b"")

    result = net.tls(host, port, name, TIMEOUT, admit)
    if not result.connected:
        ctx.note("tls", "inconclusive", f"no TLS handshake on port {port}")
        return
    where = f"{host}:{port} ({result.version})"
    if result.verify_error:
        ctx.add(
            "PROBE-TLS-CERT",
            Severity.MEDIUM,
            f"the certificate on {where} does not verify for {name}: {result.verify_error}",
            "Install a certificate from a trusted CA for the name phones use, and renew it "
            "before it expires.",
            [Evidence(f"(TLS handshake to {where}, SNI {name})", result.verify_error)],
        )
    if result.old_protocols:
        ctx.add(
            "PROBE-TLS-OLD",
            Severity.MEDIUM,
            f"{where} accepts {', '.join(result.old_protocols)}",
            "Set method=tlsv1_2 (or newer) on the PJSIP TLS transport / tlsclientmethod.",
            [Evidence(f"(handshakes offering only {p})", "accepted") for p in result.old_protocols],
        )
    if not result.verify_error and not result.old_protocols:
        untested = f"; not testable here: {', '.join(result.untested)}" if result.untested else ""
        ctx.note("tls", "ok", f"{where}: certificate verifies, no TLS < 1.2{untested}")
