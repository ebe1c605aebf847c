from __future__ import annotations

import csv
import difflib
import hashlib
import stat
from pathlib import Path

import pytest
from audit_plants import FIXTURES, TREES

from sipguard.audit.edits import MARK
from sipguard.audit.loader import DirLoader
from sipguard.audit.model import Severity
from sipguard.audit.parser import parse_tree
from sipguard.audit.writer import BACKUP_SUFFIX, audit_dir, harden_dir

LOG = FIXTURES / "registrations.log"


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def hardened(tmp_path_factory):
    out = {}
    for name in TREES:
        before = digest(FIXTURES / name)
        target = tmp_path_factory.mktemp(name)
        result = harden_dir(FIXTURES / name, target, [str(LOG)])
        assert digest(FIXTURES / name) == before, "the original must not change"
        out[name] = (target, result)
    return out


@pytest.mark.parametrize("name", TREES)
def test_hardened_tree_audits_without_high_and_still_parses(hardened, name):
    target, _ = hardened[name]
    tree, findings = audit_dir(target)
    high = [f for f in findings if f.severity >= Severity.HIGH]
    assert not high, high
    assert not [f for f in tree.findings if f.id == "PARSE-SYNTAX"]
    if name != "clean":  # the fixture itself had high findings, so harden did the work
        assert any(f.severity >= Severity.HIGH for f in audit_dir(FIXTURES / name)[1])


@pytest.mark.parametrize("name", TREES)
def test_untouched_lines_and_comments_survive_byte_for_byte(hardened, name):
    target, result = hardened[name]
    edits = result.plan.edits
    for file in parse_tree(DirLoader(FIXTURES / name)).files:
        old = (FIXTURES / name / file).read_bytes().splitlines(keepends=True)
        new = (target / file).read_bytes().splitlines(keepends=True)
        touched = set(edits.files.get(file).replaced) if file in edits.files else set()
        matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
        for op, i1, i2, _, _ in matcher.get_opcodes():
            if op in ("replace", "delete"):
                lines = set(range(i1 + 1, i2 + 1))
                assert lines <= touched, (file, sorted(lines - touched))
        for raw in old:  # every comment-only line is still there, unchanged
            if raw.lstrip().startswith(b";"):
                assert raw in new, (file, raw)


def test_unchanged_files_are_identical_copies(hardened):
    target, result = hardened["freepbx"]
    for path in (FIXTURES / "freepbx").rglob("*"):
        rel = path.relative_to(FIXTURES / "freepbx").as_posix()
        if path.is_file() and rel not in result.changed:
            assert (target / rel).read_bytes() == path.read_bytes()
    assert "rtp.conf" not in result.changed and "globals_custom.conf" not in result.changed
    assert "sip_general_additional.conf" in result.changed


def test_chansip_rename_keeps_dialplan_working_and_credentials_are_private(hardened):
    target, _ = hardened["chansip"]
    mode = stat.S_IMODE((target / "credentials.csv").stat().st_mode)
    assert mode == 0o600
    with (target / "credentials.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_ext = {r["extension"]: r for r in rows if r["file"] == "sip.conf"}
    assert set(by_ext) == {"2001", "2002", "2003"}
    tree = parse_tree(DirLoader(target))
    sip = tree.configs["sip.conf"]
    dial = (target / "extensions.conf").read_text()
    for ext, row in by_ext.items():
        user = row["username"]
        assert not user.isdigit() and ext not in user
        peer = sip.section(user)
        assert peer is not None and peer.value("host") == "dynamic"
        assert peer.value("secret") == row["secret"] and len(row["secret"]) >= 16
        assert f"SIP/{user}" in dial and f"SIP/{ext}," not in dial
        assert f"<{ext}>" in peer.value("callerid")
    general = sip.section("general")
    assert general.value("allowguest") == "no" and general.value("alwaysauthreject") == "yes"
    first = sip.section(by_ext["2001"]["username"])
    assert [e.value for e in first.values("permit")] == ["192.168.1.50/255.255.255.255"]
    assert first.value("call-limit") == "4"
    assert "security => security" in (target / "logger.conf").read_text()
    assert MARK + "[guest]" in (target / "iax.conf").read_text()
    pins = {r["extension"]: r["secret"] for r in rows if r["file"] == "voicemail.conf"}
    assert set(pins) == {"2001", "2002"} and all(len(p) == 8 for p in pins.values())
    diff = (target / "hardening.diff").read_text()
    assert diff.startswith("--- a/") and "+allowguest=no" in diff and "-allowguest=yes" in diff


def test_pjsip_keeps_endpoint_names_and_gets_opaque_auth(hardened):
    target, result = hardened["pjsip"]
    pjsip = parse_tree(DirLoader(target)).configs["pjsip.conf"]
    endpoint = next(s for s in pjsip.by_type("endpoint") if s.name == "3001")
    assert endpoint.value("identify_by") == "auth_username"
    assert [e.value for e in endpoint.values("permit")] == ["10.20.0.30/255.255.255.255"]
    auth = next(s for s in pjsip.by_type("auth") if s.name == "3001-auth")
    assert not auth.value("username").isdigit()
    provider = next(s for s in pjsip.by_type("auth") if s.name == "provider-auth")
    assert provider.value("password") == "prov123"  # the provider's secret is not ours to change
    assert "anonymous" not in {s.name for s in pjsip.by_type("endpoint")}
    lobby = next(s for s in pjsip.by_type("endpoint") if s.name == "lobby")
    assert lobby.value("auth") == "lobby-auth"
    names = {c.section for c in result.plan.credentials}
    assert names == {"3001", "lobby"}


def test_freepbx_variable_dials_keep_peer_names_and_default_path_is_cut(hardened):
    target, result = hardened["freepbx"]
    assert any("SIP/${...}" in n for n in result.plan.notes)
    sip = parse_tree(DirLoader(target)).configs["sip.conf"]
    assert sip.section("1001") is not None
    assert sip.section("general").get("allowguest").file == "sip_general_additional.conf"
    custom = (target / "extensions_custom.conf").read_text()
    assert MARK + "include => from-internal-custom" in custom
    manager = parse_tree(DirLoader(target)).configs["manager.conf"]
    assert manager.section("general").value("bindaddr") == "127.0.0.1"
    assert (target / "http.conf").read_text().count("bindaddr=127.0.0.1") == 1


def test_in_place_keeps_backups(tmp_path):
    import shutil

    src = tmp_path / "etc"
    shutil.copytree(FIXTURES / "chansip", src)
    original = (src / "sip.conf").read_bytes()
    result = harden_dir(src, tmp_path / "out", in_place=True)
    assert (src / ("sip.conf" + BACKUP_SUFFIX)).read_bytes() == original
    assert (src / "sip.conf").read_bytes() != original
    assert set(result.changed) == {
        p.name[: -len(BACKUP_SUFFIX)] for p in src.iterdir() if p.name.endswith(BACKUP_SUFFIX)
    }
    assert not [f for f in audit_dir(src)[1] if f.severity >= Severity.HIGH]
    assert (tmp_path / "out" / "hardening.diff").exists()
    assert not (tmp_path / "out" / "sip.conf").exists()


def test_call_limits_added_without_shifting_priorities(hardened):
    from sipguard.audit.dialplan import build_contexts

    for name, context, pattern in (
        ("chansip", "outbound", "_00."),
        ("chansip", "internal", "_9NXXXXXX"),
        ("pjsip", "internal", "_9."),
    ):
        target, _ = hardened[name]
        findings = audit_dir(target)[1]
        assert not [f for f in findings if f.id == "DP-CALLLIMIT"], name
        config = parse_tree(DirLoader(target)).configs["extensions.conf"]
        steps = build_contexts(config)[context].extens[pattern]
        apps = [s.app for s in steps]
        dial = apps.index("Dial")
        assert apps[dial - 2 : dial] == ["Set", "ExecIf"], (name, apps)
        assert "GROUP_COUNT" in steps[dial - 1].args
        assert steps[0].priority == "1" and all(s.priority.startswith("n") for s in steps[1:])


def test_explicit_priorities_are_left_alone_with_a_note():
    from sipguard.audit.harden import plan_hardening
    from sipguard.audit.loader import MemoryLoader

    text = b"[o]\nexten => _00.,1,Dial(SIP/t/${EXTEN})\nexten => _00.,2,Hangup()\n"
    plan = plan_hardening(parse_tree(MemoryLoader({"extensions.conf": text})))
    assert "extensions.conf" not in plan.edits.files
    assert any("by hand" in n for n in plan.notes)


def test_acl_order_rtp_and_users_conf_are_fixed(tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(FIXTURES / "chansip", src)
    (src / "users.conf").write_text("[general]\nhassip=yes\n\n[6001]\nsecret=1234 ; desk\n")
    harden_dir(src, tmp_path / "out")
    ids = {f.id for f in audit_dir(tmp_path / "out")[1]}
    assert not ids & {"SIP-ACL-ORDER", "RTP-RANGE", "SEC-COMMON", "SEC-SHORT", "LOG-SECURITY"}
    users = (tmp_path / "out" / "users.conf").read_text()
    assert "secret=1234" not in users and users.endswith(" ; desk\n")


def test_reopened_numeric_peer_is_renamed_everywhere():
    from sipguard.audit.harden import plan_hardening
    from sipguard.audit.loader import MemoryLoader

    files = {
        "sip.conf": b"[general]\nallowguest=no\n[2001]\ntype=friend\nhost=dynamic\n"
        b"secret=Vb7-pQ2x.Lm9k-Tz4w\n#include late.conf\n",
        "late.conf": b";-- [2001](+) in a comment stays --;\n[2001](+)\ncall-limit=2\n",
        "extensions.conf": b"[i]\nexten => 2001,1,Dial(SIP/2001)\n",
    }
    plan = plan_hardening(parse_tree(MemoryLoader(files)))
    user = plan.credentials[0].username
    assert plan.edits.render("sip.conf").count(f"[{user}]".encode()) == 1
    late = plan.edits.render("late.conf")
    assert late.startswith(b";-- [2001](+)") and f"[{user}](+)".encode() in late
    assert f"SIP/{user})".encode() in plan.edits.render("extensions.conf")


def test_crlf_files_keep_their_line_endings():
    from sipguard.audit.harden import plan_hardening
    from sipguard.audit.loader import MemoryLoader

    sip = b"; office\r\n[general]\r\nallowguest=yes ; was\r\n\r\n[kq7wz2mf](x)\r\n"
    logger = b"[logfiles]\r\nmessages => notice"  # no newline at the end
    tree = parse_tree(MemoryLoader({"sip.conf": sip, "logger.conf": logger}))
    plan = plan_hardening(tree)
    out = plan.edits.render("sip.conf")
    assert out.startswith(
        b"; office\r\n[general]\r\nalwaysauthreject=yes\r\nallowguest=no ; was\r\n"
    )
    assert b"\n" not in out.replace(b"\r\n", b"")
    assert plan.edits.render("logger.conf") == (
        b"[logfiles]\r\nsecurity => security\r\nmessages => notice,security"
    )


def test_outputs_are_private_and_second_in_place_run_keeps_first_backup(tmp_path):
    import shutil

    src = tmp_path / "etc"
    shutil.copytree(FIXTURES / "chansip", src)
    original = (src / "sip.conf").read_bytes()
    harden_dir(src, tmp_path / "out1", in_place=True)
    harden_dir(src, tmp_path / "out2", in_place=True)
    assert (src / ("sip.conf" + BACKUP_SUFFIX)).read_bytes() == original
    for name in ("out1", "out2"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / name / "hardening.diff").stat().st_mode) == 0o600
    harden_dir(FIXTURES / "chansip", tmp_path / "copy")
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o700


def test_manager_permit_everyone_is_replaced_and_the_audit_notices_it(tmp_path, capsys):
    from sipguard.cli.main import main

    src = tmp_path / "asterisk"
    src.mkdir()
    (src / "manager.conf").write_text(
        "[general]\nenabled=yes\nbindaddr=127.0.0.1\n\n"
        "[admin]\nsecret=Vb7-pQ2x.Lm9k-Tz4w\ndeny=0.0.0.0/0.0.0.0\n"
        "permit=0.0.0.0/0.0.0.0 ; everyone\nread=all\nwrite=call\n"
    )
    found = [f for f in audit_dir(src)[1] if f.id == "AMI-ACL-OPEN"]
    assert [(f.file, f.line) for f in found] == [("manager.conf", 8)]
    assert main(["harden", str(src), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "manager.conf").read_text()
    assert "permit=0.0.0.0" not in text
    assert "deny=0.0.0.0/0.0.0.0\npermit=127.0.0.1/255.255.255.255 ; everyone\n" in text
    assert not [f for f in audit_dir(tmp_path / "out")[1] if f.id.startswith("AMI-ACL")]
    # without a deny before it: the deny is put first, the permit narrowed
    head = "[general]\nenabled=no\n[admin]\nsecret=Vb7-pQ2x.Lm9k-Tz4w\n"
    (src / "manager.conf").write_text(head + "permit=0.0.0.0/0\n")
    plan_text = _harden_render(src, "manager.conf")
    assert plan_text == head + "deny=0.0.0.0/0.0.0.0\n" + ("permit=127.0.0.1/255.255.255.255\n")
    capsys.readouterr()


def _harden_render(src, name):
    from sipguard.audit.harden import plan_hardening
    from sipguard.audit.loader import DirLoader

    return plan_hardening(parse_tree(DirLoader(src))).edits.render(name).decode()


def test_written_logger_conf_sends_security_to_messages(tmp_path):
    from sipguard.audit.harden import plan_hardening
    from sipguard.audit.loader import MemoryLoader

    plan = plan_hardening(parse_tree(MemoryLoader({"sip.conf": b"[general]\n"})))
    written = plan.edits.render("logger.conf").decode()
    assert "\nmessages => notice,warning,error,security\n" in written
    assert "\nsecurity => security\n" in written


def test_explicit_priorities_note_gives_the_dialplan_lines():
    from sipguard.audit.harden import plan_hardening
    from sipguard.audit.harden_dialplan import CHECK_GROUP, SET_GROUP
    from sipguard.audit.loader import MemoryLoader

    text = b"[o]\nexten => _00.,1,Answer()\nexten => _00.,2,Dial(SIP/t/${EXTEN})\n"
    plan = plan_hardening(parse_tree(MemoryLoader({"extensions.conf": text})))
    note = next(n for n in plan.notes if "by hand" in n)
    assert f"'exten => _00.,2,{SET_GROUP}'" in note
    assert f"'exten => _00.,3,{CHECK_GROUP}'" in note
    assert "extensions.conf:3" in note and "add 2 to the priority of that Dial (now 2)" in note
