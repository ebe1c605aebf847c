from __future__ import annotations

import json

from audit_plants import FIXTURES, planted

from sipguard.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_shape_and_score(capsys):
    code, out, _ = run(capsys, "audit", str(FIXTURES / "chansip"), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"findings", "score"}
    assert isinstance(doc["score"], int) and 0 <= doc["score"] < 100
    for f in doc["findings"]:
        assert set(f) == {"id", "severity", "file", "line", "message", "fix"}
    assert {(f["id"], f["file"], f["line"]) for f in doc["findings"]} == planted("chansip")
    code, out, _ = run(capsys, "audit", str(FIXTURES / "clean"), "--format", "json")
    assert json.loads(out) == {"findings": [], "score": 100}


def test_sarif_shape(capsys):
    code, out, _ = run(capsys, "audit", str(FIXTURES / "pjsip"), "--format", "sarif")
    assert code == 0
    doc = json.loads(out)
    assert doc["version"] == "2.1.0" and "sarif" in doc["$schema"]
    run0 = doc["runs"][0]
    rules = {r["id"] for r in run0["tool"]["driver"]["rules"]}
    assert len(run0["results"]) == len(planted("pjsip"))
    for result in run0["results"]:
        assert result["ruleId"] in rules
        assert result["level"] in ("error", "warning", "note")
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"] and loc["region"]["startLine"] >= 1
    anon = [r for r in run0["results"] if r["ruleId"] == "PJS-ANONYMOUS"]
    assert anon[0]["level"] == "error"
    assert anon[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 70
    assert run0["originalUriBaseIds"]["CONFIGDIR"]["uri"].startswith("file:///")


def test_text_output_groups_by_file(capsys):
    code, out, _ = run(capsys, "audit", str(FIXTURES / "freepbx"), "--color", "never")
    assert code == 0 and "\x1b[" not in out
    assert "\nmanager_additional.conf\n" in out and "AMI-WRITE" in out and "score" in out
    _, coloured, _ = run(capsys, "audit", str(FIXTURES / "freepbx"), "--color", "always")
    assert "\x1b[" in coloured


def test_fail_on_exit_codes(capsys):
    chansip, clean = str(FIXTURES / "chansip"), str(FIXTURES / "clean")
    assert run(capsys, "audit", chansip, "--fail-on", "critical", "--format", "json")[0] == 1
    assert run(capsys, "audit", chansip, "--fail-on", "high", "--format", "json")[0] == 1
    assert run(capsys, "audit", clean, "--fail-on", "low", "--format", "json")[0] == 0
    assert run(capsys, "audit", clean, "--fail-on", "info", "--format", "json")[0] == 0


def test_errors_are_one_line_with_status_2(capsys, tmp_path):
    code, _, err = run(capsys, "audit", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "missing" in err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("x")
    code, _, err = run(capsys, "harden", str(FIXTURES / "clean"), "--out", str(busy))
    assert code == 2 and "--out" in err and err.count("\n") == 1
    code, _, err = run(
        capsys,
        "harden",
        str(FIXTURES / "clean"),
        "--out",
        str(tmp_path / "o"),
        "--logs",
        str(tmp_path / "nolog"),
    )
    assert code == 2 and "nolog" in err


def test_harden_command_reports_and_writes(capsys, tmp_path):
    out_dir = tmp_path / "hardened"
    code, out, _ = run(
        capsys,
        "harden",
        str(FIXTURES / "chansip"),
        "--out",
        str(out_dir),
        "--logs",
        str(FIXTURES / "registrations.log"),
    )
    assert code == 0
    assert "0 high or critical" in out
    assert (out_dir / "hardening.diff").stat().st_size > 0
    assert run(capsys, "audit", str(out_dir), "--fail-on", "high", "--format", "json")[0] == 0


def test_audit_refuses_a_directory_without_asterisk_configuration(capsys, tmp_path):
    (tmp_path / "sshd_config").write_text("PermitRootLogin no\n")  # an /etc/ssh-like directory
    for target in (tmp_path, tmp_path / "empty"):
        target.mkdir(exist_ok=True)
        code, out, err = run(capsys, "audit", str(target))
        assert code == 2 and out == ""
        assert err.startswith(f"sipguard: error: {target}: no Asterisk configuration here")
        assert "sip.conf" in err and err.count("\n") == 1
    code, _, err = run(capsys, "harden", str(tmp_path), "--out", str(tmp_path.parent / "o"))
    assert code == 2 and "no Asterisk configuration" in err


def test_audit_on_a_file_says_it_expects_a_directory(capsys):
    code, _, err = run(capsys, "audit", str(FIXTURES / "chansip" / "sip.conf"))
    assert code == 2 and "expected a directory of Asterisk configuration" in err


def test_audit_help_has_a_description(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["audit", "-h"])
    out = capsys.readouterr().out
    assert "hardening guides" in out and "Exit 0" in out


def test_harden_in_place_needs_no_out(capsys, tmp_path):
    import shutil

    src = tmp_path / "asterisk"
    shutil.copytree(FIXTURES / "chansip", src)
    code, _, err = run(capsys, "harden", str(src))
    assert code == 2 and "--out DIR is required (or --in-place" in err
    code, out, _ = run(capsys, "harden", str(src), "--in-place")
    assert code == 0, out
    side = [p for p in tmp_path.iterdir() if p.name.startswith("asterisk-sipguard-")]
    assert len(side) == 1 and (side[0] / "credentials.csv").stat().st_mode & 0o077 == 0
    assert f"in {src}\n" in out and f"diff: {side[0] / 'hardening.diff'}" in out
    assert list(src.glob("*.sipguard-bak"))  # the originals are kept beside the edited files
