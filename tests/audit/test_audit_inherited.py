"""What `[general]` gives to everyone (issue 12 item 9): the fixture tree `inherited` plants a
guest context in sip.conf [general] that reaches international dialling, insecure=invite in
[general], a default voicemail PIN in users.conf [general], and an RTP range over the SIP and
AMI ports; each is reported at its file and line, and nothing else is."""

from __future__ import annotations

import pytest
from audit_plants import FIXTURES, planted

from sipguard.audit.checks import run_checks
from sipguard.audit.checks_inherited import service_ports
from sipguard.audit.loader import MemoryLoader
from sipguard.audit.parser import parse_tree
from sipguard.audit.writer import audit_dir


def test_inherited_settings_are_reported_where_they_are_written() -> None:
    _, findings = audit_dir(FIXTURES / "inherited")
    got = {(f.id, f.file, f.line) for f in findings}
    assert got == planted("inherited")
    by_id = {f.id: f for f in findings}
    assert "(1 of 2: reception)" in by_id["SIP-GENERAL-INSECURE"].message
    assert "(1 of 2: 6001)" in by_id["USERS-GENERAL-PIN"].message
    assert "has 4 digits" in by_id["USERS-GENERAL-PIN"].message
    assert "1234" not in by_id["USERS-GENERAL-PIN"].message, "a finding never shows the PIN"
    overlap = by_id["RTP-OVERLAP"].message
    assert "chan_sip port 5060 (sip.conf:8)" in overlap and "AMI port 5038" in overlap
    assert "'_00.' at extensions.conf:7" in by_id["DP-GUEST-PAID"].message


def audit(files: dict[str, bytes]) -> set[tuple[str, str, int]]:
    return {(f.id, f.file, f.line) for f in run_checks(parse_tree(MemoryLoader(files)))}


def test_overrides_and_safe_values_are_quiet() -> None:
    # every peer overrides insecure, every user has its own PIN, the range is clear of ports
    sip = (
        b"[general]\nallowguest=no\ninsecure=invite\n[t]\ntype=peer\nhost=192.0.2.1\ninsecure=no\n"
    )
    users = b"[general]\nvmsecret=1234\n[6001]\nvmsecret=804613\n"
    rtp = b"[general]\nrtpstart=10000\nrtpend=20000\n"
    ids = {i for i, _, _ in audit({"sip.conf": sip, "users.conf": users, "rtp.conf": rtp})}
    assert not ids & {"SIP-GENERAL-INSECURE", "USERS-GENERAL-PIN", "RTP-OVERLAP"}
    # a shared password in users.conf [general] is the worst of them
    found = audit({"users.conf": b"[general]\nsecret=Vq7#rT2m!Lp9wZx4\n[6001]\n[6002]\n"})
    assert ("USERS-GENERAL-SECRET", "users.conf", 2) in found


@pytest.mark.parametrize(
    ("files", "want"),
    [
        ({"sip.conf": b"[general]\n"}, [("chan_sip", 5060, "sip.conf", 1)]),
        ({"sip.conf": b"[general]\nbindport=5070\n"}, [("chan_sip", 5070, "sip.conf", 2)]),
        (
            {"sip.conf": b"[general]\nudpbindaddr=[::]:5080\ntlsenable=yes\n"},
            [("chan_sip", 5080, "sip.conf", 2), ("chan_sip TLS", 5061, "sip.conf", 1)],
        ),
        (
            {"pjsip.conf": b"[tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0\n"},
            [("PJSIP transport [tls]", 5061, "pjsip.conf", 1)],
        ),
        ({"manager.conf": b"[general]\nenabled=no\nport=5038\n"}, []),
        ({"iax.conf": b"[general]\nbindport=4570\n"}, [("IAX2", 4570, "iax.conf", 2)]),
    ],
)
def test_service_ports(files: dict[str, bytes], want: list[tuple[str, int, str, int]]) -> None:
    assert service_ports(parse_tree(MemoryLoader(files))) == want
