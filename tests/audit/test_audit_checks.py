from __future__ import annotations

import pytest
from audit_plants import FIXTURES, TREES, planted

from sipguard.audit.checks import run_checks
from sipguard.audit.loader import MemoryLoader
from sipguard.audit.model import Severity
from sipguard.audit.parser import parse_tree
from sipguard.audit.writer import audit_dir


def found(tree_name):
    _, findings = audit_dir(FIXTURES / tree_name)
    return findings


@pytest.mark.parametrize("name", TREES)
def test_every_planted_weakness_is_reported_at_its_file_and_line(name):
    got = {(f.id, f.file, f.line) for f in found(name)}
    missing = planted(name) - got
    assert not missing, f"not reported: {sorted(missing)}"


@pytest.mark.parametrize("name", TREES)
def test_nothing_is_reported_that_was_not_planted(name):
    got = {(f.id, f.file, f.line) for f in found(name)}
    extra = got - planted(name)
    assert not extra, f"unexpected: {sorted(extra)}"


def test_planted_trees_really_are_weak_and_clean_tree_has_no_high():
    for name in ("chansip", "freepbx", "pjsip"):
        assert any(f.severity >= Severity.HIGH for f in found(name)), name
        assert len(planted(name)) >= 15
    assert not [f for f in found("clean") if f.severity >= Severity.HIGH]


def test_every_finding_explains_and_fixes():
    for name in TREES:
        for f in found(name):
            assert f.message and f.fix and f.line >= 1 and f.id.isupper()


def audit(files):
    return {(f.id, f.file, f.line) for f in run_checks(parse_tree(MemoryLoader(files)))}


def test_allowguest_default_is_reported_on_the_general_header():
    assert ("SIP-ALLOWGUEST", "sip.conf", 1) in audit({"sip.conf": b"[general]\nport=5060\n"})
    assert not {
        i for i in audit({"sip.conf": b"[general]\nallowguest=no\n"}) if i[0] == "SIP-ALLOWGUEST"
    }


def test_acl_order_last_match_wins():
    text = (
        b"[general]\nallowguest=no\n[a]\ntype=peer\nhost=1.2.3.4\n"
        b"permit=10.0.0.0/8\ndeny=0.0.0.0/0.0.0.0\ncall-limit=2\n"
    )
    assert ("SIP-ACL-ORDER", "sip.conf", 7) in audit({"sip.conf": text})
    good = text.replace(
        b"permit=10.0.0.0/8\ndeny=0.0.0.0/0.0.0.0", b"deny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/8"
    )
    assert not {i for i in audit({"sip.conf": good}) if i[0] == "SIP-ACL-ORDER"}


def test_strong_secret_passes_and_weak_variants_fail():
    def secret_ids(secret: bytes):
        text = (
            b"[general]\nallowguest=no\n[kq7wz2mf]\ntype=friend\nhost=dynamic\n"
            b"deny=0.0.0.0/0.0.0.0\npermit=10.0.0.0/8\ncall-limit=2\nsecret=" + secret + b"\n"
        )
        return {i[0] for i in audit({"sip.conf": text}) if i[0].startswith("SEC-")}

    assert secret_ids(b"Vb7-pQ2x.Lm9k-Tz4w") == set()
    assert "SEC-COMMON" in secret_ids(b"qwerty")
    assert "SEC-CONTAINS-NAME" in secret_ids(b"Kq7wz2mf-Xy9.Lm3")
    assert "SEC-CLASSES" in secret_ids(b"correcthorsebatterystaple")
    assert "SEC-SHORT" in secret_ids(b"Ab3-xY9.")


def test_trunk_secret_chosen_by_provider_is_capped_at_medium():
    text = (
        b"[general]\nallowguest=no\n[carrier]\ntype=peer\nhost=203.0.113.5\n"
        b"deny=0.0.0.0/0.0.0.0\npermit=203.0.113.5/32\ncall-limit=4\nsecret=abc\n"
    )
    sev = {f.severity for f in run_checks(parse_tree(MemoryLoader({"sip.conf": text})))}
    assert sev and max(sev) == Severity.MEDIUM


def test_ami_bound_to_loopback_is_not_reported():
    text = b"[general]\nenabled=yes\nbindaddr=127.0.0.1\n"
    assert not {i for i in audit({"manager.conf": text}) if i[0] == "AMI-BIND"}
    assert ("AMI-BIND", "manager.conf", 2) in audit({"manager.conf": b"[general]\nenabled=yes\n"})
