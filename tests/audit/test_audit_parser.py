from __future__ import annotations

from pathlib import Path

import pytest
from audit_plants import FIXTURES, TREES
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.audit import parser as parser_mod
from sipguard.audit.loader import DirLoader, MemoryLoader
from sipguard.audit.parser import parse_tree


def ids(tree):
    return {(f.id, f.file, f.line) for f in tree.findings}


@pytest.mark.parametrize("name", TREES)
def test_unmodified_tree_round_trips_byte_for_byte(name):
    root = FIXTURES / name
    tree = parse_tree(DirLoader(root))
    assert tree.files, "fixture parsed no files"
    for file, source in tree.files.items():
        assert source.render() == (root / file).read_bytes(), file


def test_round_trip_keeps_crlf_missing_newline_and_invalid_utf8():
    raw = b"[general]\r\nallowguest=no ; c\r\n\xff\xfe=\x00\r\n[x]\nkey=v"
    tree = parse_tree(MemoryLoader({"sip.conf": raw}))
    assert tree.files["sip.conf"].render() == raw


def test_templates_inheritance_and_append():
    text = (
        b"[base](!)\ntype=friend\nallow=ulaw\n"
        b"[extra](!)\nhost=dynamic\n"
        b"[2001](base,extra)\nallow+=,alaw\nsecret=s3\n"
        b"[2001](+)\ncall-limit=2\n"
    )
    config = parse_tree(MemoryLoader({"sip.conf": text})).configs["sip.conf"]
    assert [s.name for s in config.objects()] == ["2001"]
    peer = config.objects()[0]
    assert peer.parents == ["base", "extra"]
    assert peer.value("type") == "friend" and peer.value("host") == "dynamic"
    assert peer.value("allow") == "ulaw,alaw"
    assert peer.value("call-limit") == "2"
    assert (peer.get("type").file, peer.get("type").line) == ("sip.conf", 2)
    assert peer.get("call-limit").line == 10


def test_comments_escapes_block_comments_and_operators():
    text = (
        b"[ctx]\n"
        b"exten => 1,1,NoOp(a\\;b) ; trailing\n"
        b";-- start\n[hidden]\nx=1\n  ;-- nested --;\nstill=hidden\n--; after=1\n"
        b"same => n,Hangup()\n"
    )
    config = parse_tree(MemoryLoader({"extensions.conf": text})).configs["extensions.conf"]
    assert [s.name for s in config.sections] == ["ctx"]
    entries = config.sections[0].entries
    assert [(e.key, e.op, e.value, e.line) for e in entries] == [
        ("exten", "=>", "1,1,NoOp(a;b)", 2),
        ("after", "=", "1", 8),
        ("same", "=>", "n,Hangup()", 9),
    ]


def test_includes_globs_relative_and_absolute_paths():
    files = {
        "sip.conf": b'[general]\n#include "sip_general.conf"\n#include conf.d/*.conf\n'
        b"#include </etc/asterisk/late.conf>\n#tryinclude nothere.conf\n",
        "sip_general.conf": b"allowguest=no\n",
        "conf.d/a.conf": b"[a]\ntype=peer\n",
        "conf.d/b.conf": b"[b]\ntype=peer\n",
        "late.conf": b"[c]\ntype=peer\n",
    }
    tree = parse_tree(MemoryLoader(files))
    config = tree.configs["sip.conf"]
    assert [s.name for s in config.sections] == ["general", "a", "b", "c"]
    assert config.section("general").get("allowguest").file == "sip_general.conf"
    assert config.files == [
        "sip.conf",
        "sip_general.conf",
        "conf.d/a.conf",
        "conf.d/b.conf",
        "late.conf",
    ]
    assert not tree.findings  # tryinclude of a missing file is silent


def test_cycles_missing_includes_exec_and_outside_paths_are_findings():
    files = {
        "sip.conf": b"[general]\n#include a.conf\n#include gone.conf\n#exec /usr/bin/id\n"
        b"#include /root/secret.conf\n#include ../../etc/passwd\n",
        "a.conf": b"#include b.conf\n",
        "b.conf": b"#include a.conf\n",
    }
    found = ids(parse_tree(MemoryLoader(files)))
    assert ("PARSE-INCLUDE-CYCLE", "b.conf", 1) in found
    assert ("PARSE-INCLUDE-MISSING", "sip.conf", 3) in found
    assert ("PARSE-EXEC", "sip.conf", 4) in found
    assert ("PARSE-INCLUDE-OUTSIDE", "sip.conf", 5) in found
    assert ("PARSE-INCLUDE-OUTSIDE", "sip.conf", 6) in found


def test_dir_loader_never_reads_outside_root(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "secret.conf").write_text("[x]\nsecret=leak\n")
    (tmp_path / "etc" / "sip.conf").write_text("[general]\n#include ../secret.conf\n")
    tree = parse_tree(DirLoader(tmp_path / "etc"))
    assert "secret.conf" not in tree.files and "../secret.conf" not in tree.files
    assert any(f.id == "PARSE-INCLUDE-OUTSIDE" for f in tree.findings)


def test_garbage_lines_become_counted_findings(monkeypatch):
    monkeypatch.setattr(parser_mod, "MAX_PARSE_FINDINGS", 3)
    text = b"before=section\n[ok]\n" + b"nonsense line\n" * 10 + b"[unclosed\n;-- open"
    tree = parse_tree(MemoryLoader({"sip.conf": text}))
    kinds = [f.id for f in tree.findings]
    # one per line up to the limit, shared by both kinds of unparseable line
    assert kinds.count("PARSE-SYNTAX") + kinds.count("PARSE-NO-SECTION") == 3
    assert "PARSE-NO-SECTION" in kinds and "PARSE-COMMENT" in kinds


def test_size_limits(monkeypatch):
    monkeypatch.setattr(parser_mod, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(parser_mod, "MAX_DEPTH", 3)
    files = {
        "sip.conf": b"[g]\n" + b"x=1\n" * 50,
        "iax.conf": b"#include a\n",
        "a": b"#include b\n",
        "b": b"#include c\n",
        "c": b"#include d\n",
        "d": b"",
    }
    tree = parse_tree(MemoryLoader(files))
    limits = [(f.file, f.line) for f in tree.findings if f.id == "PARSE-LIMIT"]
    assert ("sip.conf", 1) in limits and ("b", 1) in limits
    assert "sip.conf" not in tree.configs


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash_and_round_trip(data):
    tree = parse_tree(MemoryLoader({"sip.conf": data, "extensions.conf": data}))
    assert tree.files["sip.conf"].render() == data


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "[a]",
                "[t](!)",
                "[b](t)",
                "[c](missing,+)",
                "x=1",
                "y => 2",
                "z += 3",
                "; c",
                ";--",
                "--;",
                "#include sip.conf",
                "#include *.conf",
                "#exec x",
                "exten => _X.,1,Goto(a,${EXTEN},1)",
                "include => a",
                "\\;",
                "[",
                "=",
                "same => n,Dial(SIP/t/${EXTEN})",
            ]
        ),
        max_size=40,
    )
)
def test_structured_garbage_runs_all_checks(lines):
    from sipguard.audit.checks import run_checks

    data = "\n".join(lines).encode()
    names = ("sip.conf", "extensions.conf", "pjsip.conf", "iax.conf", "manager.conf")
    tree = parse_tree(MemoryLoader(dict.fromkeys(names, data)))
    run_checks(tree)
    assert all(tree.files[n].render() == data for n in names)


def test_include_bomb_is_bounded(monkeypatch):
    monkeypatch.setattr(parser_mod, "MAX_INCLUDES", 50)
    bomb = b"[s]\n" + b"#include *.conf\n" * 20
    files = {f"f{i}.conf": bomb for i in range(6)} | {"sip.conf": bomb}
    tree = parse_tree(MemoryLoader(files))
    assert any(f.id == "PARSE-LIMIT" for f in tree.findings)
    assert len(tree.configs["sip.conf"].sections) <= 51


def test_section_limit(monkeypatch):
    monkeypatch.setattr(parser_mod, "MAX_SECTIONS", 10)
    data = b"".join(b"[s%d]\nx=1\n" % i for i in range(30))
    tree = parse_tree(MemoryLoader({"sip.conf": data}))
    assert len(tree.configs["sip.conf"].sections) == 10
    assert [f.id for f in tree.findings] == ["PARSE-LIMIT"]
